"""One writer per run folder: :class:`RunLock`.

``run``, ``run --resume``, ``fit`` and ``export`` hold the lock of the folder they write while they
run. The lock is the file ``LOCK`` in that folder, holding the holder's PID, host, command and start
time (JSON), and an exclusive ``fcntl.flock`` on it. The kernel drops a flock when its process dies,
however it dies (``kill -9`` included), so a lock left by a dead process is *stale*: the next writer
takes it over and logs who had held it. A second writer while the holder lives is refused with
:class:`RunLockedError`, which names the holder.

Releasing removes the file. A writer that opened the file just before the holder removed it would
hold a lock on a file no longer in the folder, so acquiring checks, after the flock, that the path
still names the locked file, and retries otherwise.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger("experiments")

LOCK_NAME = "LOCK"


class RunLockedError(RuntimeError):
    """Another live process writes this run folder."""


def _holder(text: str) -> dict:
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (its LOCK file gives no details)"
    since = holder.get("since")
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
            if isinstance(since, (int, float)) else "?")
    return (f"PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"(`{holder.get('command', '?')}`, since {when})")


class RunLock:
    """Exclusive lock of the run folder ``folder`` for ``command`` (a context manager)::

        with RunLock(run_dir, "python -m experiments run co2 --resume ..."):
            ...  # this process is the folder's only writer
    """

    def __init__(self, folder: str | os.PathLike, command: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self._fd: int | None = None
        #: the holder found in a stale LOCK file this process took over (None: it was free)
        self.took_over: dict | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 65536).decode("utf-8", "replace")
                os.close(fd)
                raise RunLockedError(
                    f"{self.folder} is being written by {_describe(_holder(text))}; wait for it to "
                    "finish (or stop it), then run this command again, or write into another "
                    "folder") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file between our open and our flock
                os.close(fd)
                continue
            old = os.read(fd, 65536).decode("utf-8", "replace")
            if old.strip():
                self.took_over = _holder(old)
                log.warning("%s: took over a stale lock of %s, whose process has ended",
                            self.folder, _describe(self.took_over))
            record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                      "since": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise RunLockedError(f"could not lock {self.path}: it was replaced 100 times in a row")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
