"""event_intake: events dropped as JSON files or POSTed over HTTP become Alerts, exactly once.

Publishes v2x_msgs/Alert on the relative topic v2x/alert_out (QoS ALERT_OUT) with
sequence 0 and source_id '' (the RSU gateway assigns the identity). The directory is
watched with inotify (watchdog) in a worker thread; the HTTP API (FastAPI) is served by
uvicorn in another thread; both publish under one lock after recording the event in a
SQLite ledger (see intake_ledger for the crash windows). The executor only runs timers:
held events (no subscriber yet), ledger pruning and diagnostics.
"""

import functools
import os
import sqlite3
import sys
import time

from rclpy.duration import Duration
from rclpy.node import Node

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.node_main import EXIT_INTERNAL, run_node
from v2x_common.params import declare_parameters
from v2x_common.worker import dead, exit_node
from v2x_intake.convert import event_to_alert
from v2x_intake.core import (
    PARAMETERS,
    EventDuplicate,
    EventHeld,
    FileDeferred,
    FileRejected,
    FileVanished,
    Intake,
    IntakeSettings,
    load_token,
)
from v2x_intake.http_api import HttpServer, bind, create_app
from v2x_intake.ledger import Ledger
from v2x_intake.schema import IntakeEvent
from v2x_intake.watch import DirectoryIntake
from v2x_msgs.msg import Alert

NODE_NAME = 'event_intake'
TOPIC = 'v2x/alert_out'
ACK_EVERY = 20  # below ALERT_OUT's depth of 50
ACK_TIMEOUT_S = 2.0
_CANNOT_START = {OSError: EXIT_INTERNAL, sqlite3.Error: EXIT_INTERNAL}  # ledger, port
class EventIntake(Node):
    """Directory + HTTP intake publishing Alerts on v2x/alert_out."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        # destroy_node must work whatever point a failed start-up reached.
        self._files = self._http = self._ledger = self._pub = None
        self.exit_code = None  # set when the HTTP server dies: node_main exits 1
        self.settings = IntakeSettings(**declare_parameters(self, PARAMETERS))
        self.settings.validate()
        token = load_token(self.settings, os.environ)
        # Bind first: a taken port fails the start before anything else runs.
        sock = None
        if self.settings.http_enabled:
            sock = bind(self.settings.http_host, self.settings.http_port)
        try:
            self._ledger = Ledger(self.settings.ledger_path)
        except (OSError, sqlite3.Error):
            if sock is not None:
                sock.close()
            raise
        self._pub = self.create_publisher(Alert, TOPIC, qos.ALERT_OUT)
        self._unacked = 0
        self.intake = Intake(self.settings, self._ledger, self._publish, self._can_publish)
        pruned = self.intake.prune()
        self._hold_timer = self.create_timer(0.2, self._flush_held)
        self._prune_timer = self.create_timer(3600.0, self.intake.prune)
        self._diag = Diagnostics(self, status_fn=self._health)
        self._warned_at = 0.0
        self.http_port = None
        if self.settings.events_dir:
            for directory in (self.settings.processed_dir, self.settings.failed_dir):
                os.makedirs(directory, exist_ok=True)
            self._files = DirectoryIntake(self.settings.events_dir, self.intake.process_file,
                                          self._on_file, self._on_file_error,
                                          self.settings.settle_s, logger=self.get_logger())
            self._files.start()
        if sock is not None:
            app = create_app(self._submit_http, token, self._health_values)
            self._http = HttpServer(app, sock, logger=self.get_logger(),
                                    on_death=functools.partial(exit_node, self))
            self.http_port = self._http.port
            self._http.start()
        self.get_logger().info(
            f'watching {self.settings.events_dir or "(no directory)"}, HTTP '
            + (f'on {self.settings.http_host}:{self.http_port}'
               + (' WITHOUT a token' if token is None else '')
               if self._http else 'off')
            + f', ledger {self.settings.ledger_path} ({self.intake.held} held, '
            f'{pruned} pruned)')

    @property
    def http_ready(self) -> bool:
        """True once the HTTP intake accepts connections."""
        return self._http is not None and self._http.started

    # -- publishing (called from the file worker and the HTTP threads, under Intake's lock)
    def _publish(self, event: IntakeEvent) -> None:
        self._pub.publish(event_to_alert(event, time.time()))
        # KEEP_LAST(50) drops the oldest unacknowledged sample when a burst outruns the
        # subscriber: let the readers acknowledge every ACK_EVERY samples.
        self._unacked += 1
        if self._unacked >= ACK_EVERY:
            self._unacked = 0
            if not self._pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)):
                self.intake.stats['ack_timeouts'] += 1

    def _can_publish(self) -> bool:
        return not self.settings.hold_without_subscriber or \
            self._pub.get_subscription_count() > 0

    def _flush_held(self) -> None:
        if self.intake.held:
            try:
                sent = self.intake.flush()
            except RuntimeError as exc:
                self._warn(f'cannot publish held events yet: {exc}')
                return
            if sent:
                self.get_logger().info(f'published {sent} held event(s)')

    def _submit_http(self, body: bytes, client: str):
        outcome = self.intake.handle(body, 'http', client)
        self._log_outcome(f'HTTP from {client}', outcome)
        return outcome

    # -- the directory worker's reports
    def _on_file(self, path: str, outcome) -> None:
        name = os.path.basename(path)
        if isinstance(outcome, FileRejected):
            self._warn(f'{name} -> failed/: {outcome.error}')
        elif not isinstance(outcome, (FileDeferred, FileVanished)):
            self._log_outcome(name, outcome)

    def _on_file_error(self, path: str, exc: Exception) -> None:
        self.intake.stats['file_errors'] += 1
        self.intake.last_error = f'{os.path.basename(path)}: {exc}'
        # Counted always; logged at most every 5 s (a full disk would fail every file).
        self.get_logger().error(f'cannot process {path}: {exc}', throttle_duration_sec=5.0)

    def _log_outcome(self, what: str, outcome) -> None:
        if isinstance(outcome, EventDuplicate):
            self.get_logger().info(f'{what}: {outcome.key} already accepted, not published '
                                   'again')
        elif isinstance(outcome, EventHeld):
            self._warn(f'{what}: held until {TOPIC} has a subscriber')
        else:
            self.get_logger().debug(f'{what}: published {outcome.key}')

    def _warn(self, text: str) -> None:
        # Throttled by hand: Humble's logger has throttle_duration_sec, but keep it simple
        # and per node rather than per call site.
        now = time.monotonic()
        if now - self._warned_at >= 1.0:
            self._warned_at = now
            self.get_logger().warning(text)
        else:
            self.get_logger().debug(text)

    # -- health
    def _health_values(self) -> dict:
        values = self.intake.snapshot()
        values['held'] = self.intake.held
        values['backlog'] = self._files.backlog if self._files else 0
        values['subscribers'] = self._pub.get_subscription_count()
        return values

    def _workers(self) -> list:
        return [x.worker for x in (self._files, self._http) if x is not None]

    def _health(self):
        values = self._health_values()
        values['last_error'] = self.intake.last_error
        for worker in self._workers():
            values.update(worker.status())
        gone = dead(self._workers())
        if gone:
            return ERROR, f'worker {gone[0].name} died: {gone[0].last_error}', values
        if self.intake.held:
            return WARN, f'{self.intake.held} event(s) held: no subscriber on {TOPIC}', values
        if values.get('file_errors'):
            return WARN, 'some files could not be moved', values
        return OK, 'running', values

    def destroy_node(self):
        """Stop HTTP and the watcher first (no publish after this), then the ledger."""
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._files is not None:
            self._files.stop()
            self._files = None
        # Samples still in the writer die with it: give the readers a moment to take them.
        if self._pub is not None:
            try:
                self._pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
            except RuntimeError:  # the context is already shut down
                pass
        if self._ledger is not None:
            self._ledger.close()
        return super().destroy_node()


def main(args=None) -> int:
    """Run the node until Ctrl-C, SIGTERM or shutdown; exit 2 on a bad parameter."""
    # Our own SIGINT/SIGTERM handling: the context must outlive destroy_node, which stops
    # the intakes and waits for the last alerts to be acknowledged before shutdown.
    return run_node(NODE_NAME, EventIntake, args, _CANNOT_START, own_signals=True)


if __name__ == '__main__':
    sys.exit(main())
