"""SIGINT and SIGTERM go to a job's handler inside ``handled`` and back afterwards."""

import os
import signal
import threading

from paczero.signals import STOP_SIGNALS, handled


def test_the_handler_gets_the_signal_inside_the_block_and_the_old_one_is_restored():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    got = []
    with handled(lambda signum, frame: got.append(signum)):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered before kill returns to Python code
        os.kill(os.getpid(), signal.SIGINT)
    assert got == [signal.SIGTERM, signal.SIGINT]
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


def test_outside_the_main_thread_nothing_changes():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    seen = []

    def worker():
        with handled(lambda signum, frame: None):
            seen.append({sig: signal.getsignal(sig) for sig in STOP_SIGNALS})

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]
