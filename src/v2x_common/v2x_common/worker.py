"""One supervised background thread (Frigate's maintainer threads): never silently dead.

    self.worker = Worker('detector', self._work, logger=self.get_logger(),
                         on_death=self.worker_died)
    self.worker.start()
    ...
    def _work(self):                    # runs until self.worker.stopping is set
        while not self.worker.stopping.is_set(): ...
    ...
    self.worker.stop()                  # in destroy_node: set stopping, wake, join

Contract:

- ``target()`` runs in a daemon thread named ``name``. It should return once
  ``worker.stopping`` is set; ``wake`` (optional) is called by :meth:`stop` to unblock it
  (put a sentinel in its queue, tell a server to exit).
- An exception escaping ``target`` (SystemExit included: uvicorn raises it) is caught,
  counted (``errors``), kept (``last_error``) and logged at ERROR. With ``restart`` the
  target is called again after ``backoff_s`` (doubling up to 30 s); without it the
  worker is DEAD.
- ``target`` returning before :meth:`stop` was asked is a death too, unless
  ``may_finish`` (a file read to its end): a service thread must not end quietly.
- On death ``on_death(worker)`` runs in the worker's thread; a node passes
  :func:`exit_node` (via ``functools.partial``) to make node_main end the process with
  status 1 so that systemd restarts it, or reports it in diagnostics only.
- :meth:`status` gives the diagnostics values (``<name>_state``, ``<name>_errors``,
  ``<name>_last_error``); :func:`dead` lists the dead ones for an ERROR status.

Pure Python (threading only).
"""

import threading
from typing import Callable, Iterable

NEW, RUNNING, FINISHED, STOPPED, DEAD = 'new', 'running', 'finished', 'stopped', 'dead'
MAX_BACKOFF_S = 30.0


class Worker:
    """A background thread whose failures are caught, counted and reported."""

    def __init__(self, name: str, target: Callable[[], None], *, logger=None,
                 restart: bool = False, backoff_s: float = 1.0, may_finish: bool = False,
                 wake: Callable[[], None] | None = None,
                 on_death: Callable[['Worker'], None] | None = None):
        self.name = name
        self.stopping = threading.Event()
        self.state = NEW
        self.errors = 0
        self.last_error = ''
        self._target = target
        self._logger = logger
        self._restart = restart
        self._backoff_s = backoff_s
        self._may_finish = may_finish
        self._wake = wake
        self._on_death = on_death
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> 'Worker':
        """Start the thread; returns the worker."""
        self.state = RUNNING
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    @property
    def dead(self) -> bool:
        """True once the worker ended by a failure (not by stop() or a permitted finish)."""
        return self.state == DEAD

    def _log(self, text: str) -> None:
        if self._logger is not None:
            self._logger.error(text)

    def _run(self) -> None:
        backoff = self._backoff_s
        while True:
            try:
                self._target()
            except (Exception, SystemExit) as exc:  # noqa: BLE001 -- counted, never silent
                self.errors += 1
                self.last_error = f'{type(exc).__name__}: {exc}'
                problem = f'worker {self.name} failed: {self.last_error}'
            else:
                if self.stopping.is_set():
                    break
                if self._may_finish:
                    self.state = FINISHED
                    return
                problem = f'worker {self.name} ended unexpectedly'
                self.last_error = self.last_error or 'ended unexpectedly'
            if self.stopping.is_set():
                break
            if not self._restart:
                self.state = DEAD
                self._log(problem)
                if self._on_death is not None:
                    self._on_death(self)
                return
            self._log(f'{problem}; restarting in {backoff:g} s')
            if self.stopping.wait(backoff):
                break
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.state = STOPPED

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the target to return, wake it, wait up to timeout; True when it ended."""
        self.stopping.set()
        if self._wake is not None:
            self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self.state in (NEW, RUNNING) and not self._thread.is_alive():
            self.state = STOPPED
        return not self._thread.is_alive()

    def status(self) -> dict:
        """Diagnostics values: state, errors and last error under the worker's name."""
        return {f'{self.name}_state': self.state, f'{self.name}_errors': self.errors,
                f'{self.name}_last_error': self.last_error}


def dead(workers: Iterable['Worker | None']) -> list[Worker]:
    """The workers that died (None entries are skipped)."""
    return [w for w in workers if w is not None and w.dead]


def exit_node(node, worker: Worker, code: int = 1) -> None:
    """on_death helper: ask node_main to end the process with ``code`` (1: internal)."""
    if getattr(node, 'exit_code', None) is None:
        node.exit_code = code
