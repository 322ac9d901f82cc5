"""DirectoryIntake's worker thread without ROS: an unexpected error on one file ends nothing."""

import errno
import os
import time

import pytest

from v2x_intake import watch
from v2x_intake.core import FileVanished
from v2x_intake.watch import DirectoryIntake, FileWorkerError


def _wait(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize('bug', [KeyError('ts'), TypeError('bad operand'),
                                 ZeroDivisionError('division by zero'), ValueError('odd')])
def test_unexpected_error_on_one_file_is_reported_and_the_worker_goes_on(tmp_path, bug):
    """process() raising anything on one file: on_error gets the file and the exception's
    type, the file stays, and the next file (scanned or from inotify) is still processed."""
    events = tmp_path / 'events'
    events.mkdir()
    (events / 'bad.json').write_text('{}')
    done, errors = [], []

    def process(path, settled):
        if os.path.basename(path) == 'bad.json':
            raise bug
        return FileVanished(os.path.basename(path))

    intake = DirectoryIntake(str(events), process, lambda p, o: done.append(p),
                             lambda p, e: errors.append((p, e)), settle_s=0.1)
    intake.start()
    try:
        assert _wait(lambda: errors)
        (events / 'good.json').write_text('{}')  # closed after writing: inotify offers it
        assert _wait(lambda: any(p.endswith('good.json') for p in done))
        path, exc = errors[0]
        assert os.path.basename(path) == 'bad.json'
        assert isinstance(exc, FileWorkerError) and type(bug).__name__ in str(exc)
        assert intake.errors == 1 and (events / 'bad.json').exists()
        assert intake.worker.alive
    finally:
        intake.stop()


def test_failing_error_callback_does_not_end_the_worker(tmp_path):
    """Even an on_error that raises leaves the worker running for the next file."""
    events = tmp_path / 'events'
    events.mkdir()
    (events / 'a.json').write_text('{}')
    done = []

    def process(path, settled):
        if path.endswith('a.json'):
            raise OSError('disk full')
        return FileVanished(os.path.basename(path))

    def on_error(path, exc):
        raise RuntimeError('callback bug')

    intake = DirectoryIntake(str(events), process, lambda p, o: done.append(p), on_error,
                             settle_s=0.1)
    intake.start()
    try:
        assert _wait(lambda: intake.errors >= 1)
        (events / 'b.json').write_text('{}')
        assert _wait(lambda: any(p.endswith('b.json') for p in done))
    finally:
        intake.stop()


def test_transient_error_is_retried_until_the_file_goes_through(tmp_path, monkeypatch):
    """EMFILE / ENOSPC on a file: it is tried again later (not stranded until the next
    start), with growing delays, and goes through once the fault is gone."""
    monkeypatch.setattr(watch, 'RETRY_FIRST_S', 0.05)
    events = tmp_path / 'events'
    events.mkdir()
    faults = [OSError(errno.EMFILE, 'Too many open files'),
              OSError(errno.ENOSPC, 'No space left on device')]
    done, errors = [], []

    def process(path, settled):
        if faults:
            raise faults.pop(0)
        return FileVanished(os.path.basename(path))

    intake = DirectoryIntake(str(events), process, lambda p, o: done.append(p),
                             lambda p, e: errors.append(e), settle_s=0.1)
    intake.start()
    try:
        (events / 'a.json').write_text('{}')
        assert _wait(lambda: done)
        assert intake.retries == 2 and [e.cause.errno for e in errors] == [errno.EMFILE,
                                                                            errno.ENOSPC]
        assert 'trying again in 0.1 s' in str(errors[1])
    finally:
        intake.stop()


def test_symlink_made_while_running_is_offered(tmp_path):
    """A symbolic link is never written (no close event): it is offered when created, so
    the intake can move it to failed/ instead of ignoring it."""
    events = tmp_path / 'events'
    events.mkdir()
    (events / 'old.json').symlink_to(tmp_path / 'nowhere.json')  # found by the scan
    seen = []
    intake = DirectoryIntake(str(events), lambda p, s: seen.append(p) or FileVanished(p),
                             lambda p, o: None, lambda p, e: None, settle_s=0.1)
    intake.start()
    try:
        (events / 'new.json').symlink_to(tmp_path / 'nowhere.json')
        assert _wait(lambda: {os.path.basename(p) for p in seen} >= {'old.json', 'new.json'})
    finally:
        intake.stop()
