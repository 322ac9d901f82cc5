"""DirectoryIntake's worker thread without ROS: an unexpected error on one file ends nothing."""

import os
import time

import pytest

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
        assert _wait(lambda: intake.errors == 1)
        (events / 'b.json').write_text('{}')
        assert _wait(lambda: any(p.endswith('b.json') for p in done))
    finally:
        intake.stop()
