"""v2x_common.worker: a supervised thread is never silently dead (pure, no ROS)."""

import functools
import queue
import threading
from types import SimpleNamespace

from v2x_common.worker import DEAD, FINISHED, STOPPED, Worker, dead, exit_node


class Log:
    def __init__(self):
        self.lines = []

    def error(self, text):
        self.lines.append(text)


def _wait(predicate, timeout=5.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        event.wait(0.01)
    return predicate()


def test_stop_wakes_a_blocked_target_and_joins():
    """stop() sets stopping, calls wake, and the thread ends as STOPPED without errors."""
    q = queue.Queue()
    w = Worker('q', lambda: q.get(), wake=lambda: q.put(None)).start()
    assert w.alive
    assert w.stop(timeout=5.0)
    assert w.state == STOPPED and w.errors == 0 and not dead([w, None])


def test_a_crash_without_restart_is_dead_reported_and_exits_the_node():
    """An exception kills the worker visibly: DEAD, counted, logged at ERROR, and on_death
    asks node_main for exit status 1."""
    log = Log()
    node = SimpleNamespace(exit_code=None)

    def boom():
        raise ValueError('bad frame')
    w = Worker('det', boom, logger=log, on_death=functools.partial(exit_node, node)).start()
    assert _wait(lambda: w.state == DEAD)
    assert w.errors == 1 and w.last_error == 'ValueError: bad frame'
    assert 'worker det failed: ValueError: bad frame' in log.lines[0]
    assert _wait(lambda: node.exit_code == 1)
    assert dead([w]) == [w]
    assert w.status() == {'det_state': DEAD, 'det_errors': 1,
                          'det_last_error': 'ValueError: bad frame'}


def test_restart_calls_the_target_again_after_a_crash():
    """With restart, each failure is counted and the target runs again."""
    calls = []
    w = None

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError('once more')
        w.stopping.wait()
    w = Worker('flaky', flaky, restart=True, backoff_s=0.01, logger=Log()).start()
    assert _wait(lambda: len(calls) == 3)
    assert w.errors == 2 and not w.dead
    assert w.stop() and w.state == STOPPED


def test_returning_early_is_a_death_unless_it_may_finish():
    """A service thread that returns before stop() is DEAD (SystemExit too); a reader that
    may finish is FINISHED."""
    early = Worker('svc', lambda: None, logger=Log()).start()
    assert _wait(lambda: early.dead) and early.last_error == 'ended unexpectedly'

    def exits():
        raise SystemExit(1)
    sysexit = Worker('uvicorn', exits, logger=Log()).start()
    assert _wait(lambda: sysexit.dead) and sysexit.last_error == 'SystemExit: 1'
    done = Worker('file', lambda: None, may_finish=True).start()
    assert _wait(lambda: done.state == FINISHED) and not done.dead
