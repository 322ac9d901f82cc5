"""The directory half of event_intake: inotify (watchdog) events -> one worker thread.

A file is taken when it is closed after writing (IN_CLOSE_WRITE) or renamed into the
directory (the write-to-a-temporary-name-then-rename pattern); a file merely created,
or still open, is left alone. At start the directory is scanned once, after the
observer runs, so files that arrived while the node was down are processed and none
that arrive during the scan is missed. Files found by the scan that do not parse yet
and were modified less than settle_s ago are looked at again once they settle. A
symbolic link (made, never written) is offered when created, so it goes to failed/.
A file that met an OSError or a database error (EMFILE, ENOSPC, EACCES, a locked
ledger) is retried after 1 s, 2 s, 4 s ... up to every RETRY_MAX_S, until it goes
through: a transient fault never strands a file until the next start.
"""

import heapq
import logging
import os
import queue
import sqlite3
import time
from typing import Callable

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from v2x_common.worker import Worker
from v2x_intake.core import FileDeferred, FileOutcome, is_candidate

_STOP = object()
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


class _QuietStop(logging.Filter):
    # watchdog 7 logs this ERROR when its reader thread wakes after stop(); nothing is lost.
    def filter(self, record: logging.LogRecord) -> bool:
        return 'called when the thread is inactive' not in record.getMessage()


logging.getLogger('watchdog.observers.inotify').addFilter(_QuietStop())


class _Handler(FileSystemEventHandler):
    def __init__(self, directory: str, enqueue: Callable[[str, bool], None]):
        self._directory = directory
        self._enqueue = enqueue

    def _offer(self, path: str) -> None:
        path = os.fsdecode(path)
        head, name = os.path.split(path)
        if os.path.realpath(head) == self._directory and is_candidate(name):
            self._enqueue(os.path.join(self._directory, name), True)

    def on_created(self, event: FileCreatedEvent) -> None:
        # A symlink is never written (no close event): offer it when made, for failed/.
        if not event.is_directory and os.path.islink(os.fsdecode(event.src_path)):
            self._offer(event.src_path)

    def on_closed(self, event: FileClosedEvent) -> None:
        if not event.is_directory:
            self._offer(event.src_path)

    def on_moved(self, event: FileMovedEvent) -> None:
        if not event.is_directory:
            self._offer(event.dest_path)


class FileWorkerError(RuntimeError):
    """An unexpected exception met while processing one file (its type and text)."""


class RetryLater(OSError):
    """A transient error on one file (``cause``); it is tried again in ``delay_s``."""

    def __init__(self, cause: Exception, delay_s: float):
        self.cause = cause
        self.delay_s = delay_s
        super().__init__(getattr(cause, 'errno', None),
                         f'{cause} (trying again in {delay_s:g} s)')

    def __str__(self) -> str:
        return self.strerror


class DirectoryIntake:
    """Watch events_dir and feed each finished file to process(path, settled)."""

    def __init__(self, events_dir: str, process: Callable[[str, bool], FileOutcome],
                 on_outcome: Callable[[str, FileOutcome], None],
                 on_error: Callable[[str, Exception], None], settle_s: float = 2.0,
                 logger=None):
        self.directory = os.path.realpath(events_dir)
        self._process = process
        self._on_outcome = on_outcome
        self._on_error = on_error
        self._settle_s = settle_s
        self._queue: queue.Queue = queue.Queue()
        self._deferred: list[tuple[float, str]] = []
        self._attempts: dict[str, int] = {}  # path -> failed attempts in a row
        self._observer = None
        # Supervised: an exception outside the per-file handling is counted, logged and
        # the worker restarted (worker.status() goes into diagnostics).
        self.worker = Worker('event_intake_files', self._run, logger=logger, restart=True,
                             wake=lambda: self._queue.put(_STOP))
        self.queued = 0
        self.errors = 0  # files on_error was called for
        self.retries = 0  # retries scheduled after a transient error

    def start(self) -> None:
        """Create the directory, start inotify and the worker, then scan once."""
        os.makedirs(self.directory, exist_ok=True)
        self._observer = Observer()
        self._observer.schedule(_Handler(self.directory, self._enqueue), self.directory,
                                recursive=False)
        self._observer.start()
        self.worker.start()
        for name in self._scan():
            self._enqueue(os.path.join(self.directory, name), False)

    def _scan(self) -> list[str]:
        entries = []
        with os.scandir(self.directory) as it:
            for entry in it:
                if not is_candidate(entry.name):
                    continue
                try:
                    if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        entries.append((stat.st_mtime, entry.name))
                except FileNotFoundError:
                    pass  # taken meanwhile by the worker (inotify runs already)
        return [name for _, name in sorted(entries)]

    def _enqueue(self, path: str, settled: bool) -> None:
        self.queued += 1
        self._queue.put((path, settled))

    def _run(self) -> None:
        while True:
            timeout = None
            if self._deferred:
                timeout = max(0.0, self._deferred[0][0] - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                _, path = heapq.heappop(self._deferred)
                item = (path, False)
            if item is _STOP or self.worker.stopping.is_set():
                return
            path, settled = item
            try:
                outcome = self._process(path, settled)
                self._attempts.pop(path, None)
                if isinstance(outcome, FileDeferred):
                    heapq.heappush(self._deferred, (time.monotonic() + self._settle_s, path))
                self._on_outcome(path, outcome)
            except (OSError, sqlite3.Error) as exc:
                # Out of descriptors, a full disk, a permission problem, a busy ledger: the
                # file stays where it is and is tried again later, less and less often.
                attempts = self._attempts.get(path, 0)
                self._attempts[path] = attempts + 1
                delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** attempts)
                heapq.heappush(self._deferred, (time.monotonic() + delay, path))
                self.retries += 1
                self._report(path, RetryLater(exc, delay))
            except RuntimeError as exc:
                # The node shutting down (rclpy's context is gone): retried at the next start.
                self._report(path, exc)
            except Exception as exc:  # noqa: BLE001 -- a bug on one file must not end intake
                # Anything else is a bug met on this file: it stays where it is, the worker
                # goes on with the next one (the callback counts and logs it).
                self._report(path, FileWorkerError(f'{type(exc).__name__}: {exc}'))

    def _report(self, path: str, exc: Exception) -> None:
        self.errors += 1
        try:
            self._on_error(path, exc)
        except Exception:  # noqa: BLE001 -- the worker outlives a failing error callback
            pass

    @property
    def backlog(self) -> int:
        """Files waiting for the worker (a hint for diagnostics)."""
        return self._queue.qsize() + len(self._deferred)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching; the worker finishes the file in hand and exits."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
        if self.worker.state != 'new':
            self.worker.stop(timeout)
