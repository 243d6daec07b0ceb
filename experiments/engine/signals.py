"""Clean stops: SIGINT (Ctrl-C), SIGTERM (``timeout``, batch schedulers, ``docker stop``,
torchrun's shutdown) and SIGHUP (a closed terminal) end a fit at a consistent point.

:class:`StopSignals` is a context manager. While it is active, the first of these signals only
*requests* a stop (:attr:`StopSignals.requested`); :func:`~experiments.engine.training.fit` looks
at the request after every step, so the step in flight finishes, the state is consistent, and
fit writes a checkpoint from which a resume continues exactly where the run stopped (the epoch's
data order, the position in it and the random state included), then raises :class:`Stopped`.
A second signal raises :class:`Stopped` at once, for a run that must end now.

With ``deferred=False`` (how the command line wraps a whole command) every one of these signals
raises :class:`Stopped` at once: outside the training loop there is no step to finish.

Handlers can only be installed in the main thread; elsewhere the context does nothing and a
signal keeps its default effect. The previous handlers come back on exit.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("experiments")

#: the signals that stop a run cleanly (SIGHUP does not exist on Windows)
SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP"))
                if s is not None)


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal (a :class:`KeyboardInterrupt`, so that ``except Exception``
    never swallows it). ``signum`` is the signal; ``exit_code`` the shell's 128 + signum."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = signum
        super().__init__(message or f"stopped by {signal_name(signum)}")

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """Turn SIGINT/SIGTERM/SIGHUP into a stop request (``deferred=True``: the first signal; a
    second one raises :class:`Stopped`) or into :class:`Stopped` at once (``deferred=False``)."""

    def __init__(self, deferred: bool = True, what: str = "the run"):
        self.deferred, self.what = deferred, what
        #: the signal number of the first signal received (None: none yet)
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.deferred and self.requested is None:
            self.requested = signum
            log.warning("%s received: %s stops after the step in progress and saves a checkpoint "
                        "(send it again to stop at once)", signal_name(signum), self.what)
            return
        self.requested = signum
        raise Stopped(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
