"""Every signal is a clean stop (issue 25): SIGINT, SIGTERM and SIGHUP."""

import os
import signal

import pytest

from experiments.engine.signals import Stopped, StopSignals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_signal_requests_a_stop_and_the_second_stops_at_once(signum):
    before = signal.getsignal(signum)
    with StopSignals(what="the test") as stops:
        os.kill(os.getpid(), signum)
        assert stops.requested == signum  # handled synchronously in the main thread
        with pytest.raises(Stopped) as info:
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # (a handler runs between bytecodes)
                pass
    assert info.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is before


def test_not_deferred_stops_at_once():
    with pytest.raises(Stopped, match="SIGTERM"), StopSignals(deferred=False):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
