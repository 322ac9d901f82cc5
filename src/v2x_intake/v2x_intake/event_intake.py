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
from v2x_common.logbudget import LogBudget
from v2x_common.node_main import EXIT_INTERNAL, run_node
from v2x_common.params import ParameterError, declare_parameters
from v2x_common.paths import prepare_dir
from v2x_common.worker import dead, exit_node
from v2x_http.server import HttpServer, bind_or_explain
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
from v2x_intake.http_api import create_app
from v2x_intake.ledger import Ledger
from v2x_intake.schema import IntakeError, IntakeEvent
from v2x_intake.watch import DirectoryIntake
from v2x_msgs.msg import Alert

NODE_NAME = 'event_intake'
TOPIC = 'v2x/alert_out'
ACK_EVERY = 20  # below ALERT_OUT's depth of 50
ACK_TIMEOUT_S = 2.0  # at shutdown
PACE_TIMEOUT_S = 2.0  # in a burst, after the rows are marked published
PACE_PAUSE_S = 10.0  # after a pacing wait timed out (a reader that never acknowledges)
REJECTIONS_PER_WINDOW = 20
REJECTION_WINDOW_S = 10.0
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
        s = self.settings
        made = s.token_file_create and s.token_file and not os.path.exists(s.token_file)
        token = load_token(s, os.environ)
        if made:  # where the token is, never the token
            self.get_logger().info(f'made a random HTTP bearer token in {s.token_file} '
                                   '(mode 0600): send it as "Authorization: Bearer $(cat '
                                   f'{s.token_file})"')
        # Bind first: a taken port fails the start before anything else runs.
        sock = None
        if self.settings.http_enabled:
            sock = bind_or_explain(self.settings.http_host, self.settings.http_port,
                                   host_param='http_host', port_param='http_port')
        try:
            made = self._prepare_dirs()
            self._ledger = Ledger(self.settings.ledger_path)
        except (OSError, sqlite3.Error, ParameterError):
            if sock is not None:
                sock.close()
            raise
        for line in made:
            self.get_logger().info(line)
        self._pub = self.create_publisher(Alert, TOPIC, qos.ALERT_OUT)
        self._unacked = 0
        self._pace_paused_until = 0.0
        self._rejections = LogBudget(REJECTIONS_PER_WINDOW, REJECTION_WINDOW_S)
        self.intake = Intake(self.settings, self._ledger, self._publish, self._can_publish,
                             after_publish=self._pace)
        pruned = self.intake.prune()
        self._hold_timer = self.create_timer(0.2, self._flush_held)
        self._prune_timer = self.create_timer(3600.0, self.intake.prune)
        self._diag = Diagnostics(self, status_fn=self._health)
        self._warned_at = 0.0
        self._suppressed_timer = self.create_timer(REJECTION_WINDOW_S,
                                                   self._log_suppressed)
        self.http_port = None
        if self.settings.events_dir:
            self._files = DirectoryIntake(self.settings.events_dir, self.intake.process_file,
                                          self._on_file, self._on_file_error,
                                          self.settings.settle_s, logger=self.get_logger())
            self._files.start()
        if sock is not None:
            app = create_app(self._submit_http, token, self._health_values)
            self._http = HttpServer(app, sock, logger=self.get_logger(),
                                    on_death=functools.partial(exit_node, self),
                                    name='event_intake_http')
            self.http_port = self._http.port
            self._http.start()
        self.get_logger().info(
            f'watching {self.settings.events_dir or "(no directory)"}, HTTP '
            + (f'on {self.settings.http_host}:{self.http_port}'
               + (' WITHOUT a token' if token is None else '')
               if self._http else 'off')
            + f', ledger {self.settings.ledger_path} ({self.intake.held} held, '
            f'{pruned} pruned)')

    def _prepare_dirs(self) -> list[str]:
        """Every directory the node writes, made or checked; the lines saying what was made."""
        s = self.settings
        dirs = [('state_dir', os.path.dirname(s.ledger_path))]
        if s.events_dir:
            dirs += [('events_dir', s.events_dir), ('events_dir', s.processed_dir),
                     ('events_dir', s.failed_dir)]
        return [line for name, path in dirs if (line := prepare_dir(path, name))]

    @property
    def http_ready(self) -> bool:
        """True once the HTTP intake accepts connections."""
        return self._http is not None and self._http.started

    # -- publishing (called from the file worker and the HTTP threads, under Intake's lock)
    def _publish(self, event: IntakeEvent) -> None:
        self._pub.publish(event_to_alert(event, time.time()))
        self._unacked += 1

    def _pace(self) -> None:
        # Called by Intake after the rows are marked published and its lock is released,
        # so the wait never widens the duplicate window nor holds up the other intake.
        # KEEP_LAST(50) drops the oldest unacknowledged sample when a burst outruns the
        # subscriber: let the readers acknowledge every ACK_EVERY samples. A reader that
        # does not acknowledge in PACE_TIMEOUT_S pauses pacing for PACE_PAUSE_S.
        if self._unacked < ACK_EVERY or time.monotonic() < self._pace_paused_until:
            return
        self._unacked = 0
        if not self._pub.wait_for_all_acked(Duration(seconds=PACE_TIMEOUT_S)):
            self.intake.stats['ack_timeouts'] += 1
            self._pace_paused_until = time.monotonic() + PACE_PAUSE_S

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
        try:
            outcome = self.intake.handle(body, 'http', client)
        except IntakeError as error:
            self._log_rejection(f'HTTP from {client} refused ({error.kind}): {error}')
            raise
        self._log_outcome(f'HTTP from {client}', outcome)
        return outcome

    # -- the directory worker's reports
    def _on_file(self, path: str, outcome) -> None:
        name = os.path.basename(path)
        if isinstance(outcome, FileRejected):
            self._log_rejection(f'{name} -> failed/ ({outcome.error.kind}): {outcome.error}')
        elif not isinstance(outcome, (FileDeferred, FileVanished)):
            self._log_outcome(name, outcome)

    def _on_file_error(self, path: str, exc: Exception) -> None:
        self.intake.stats['file_errors'] += 1
        self.intake.last_error = f'{os.path.basename(path)}: {exc}'
        # Counted always; logged at most every 5 s (a full disk would fail every file).
        self.get_logger().error(f'cannot process {path}: {exc}', throttle_duration_sec=5.0)

    def _log_rejection(self, text: str) -> None:
        # Every rejection is logged, up to REJECTIONS_PER_WINDOW per window; the rest are
        # counted and the count said when the window is over (_log_suppressed).
        if self._rejections.allow():
            self.get_logger().warning(text)

    def _log_suppressed(self) -> None:
        held = self._rejections.take_suppressed()
        if held:
            self.get_logger().warning(
                f'{held} more rejected event(s) not logged in the last '
                f'{REJECTION_WINDOW_S:g} s (each file is in failed/ with its .error.txt; '
                'each HTTP sender got the reason)')

    def _log_outcome(self, what: str, outcome) -> None:
        if isinstance(outcome, EventDuplicate):
            self.get_logger().info(f'{what}: {outcome.key} already accepted, not published '
                                   'again')
        else:
            # an operator migrating from the seed's watcher sees what was filled in
            filled = (f" (absent, so the seed's defaults: {', '.join(outcome.defaulted)})"
                      if outcome.defaulted else '')
            if isinstance(outcome, EventHeld):
                self.get_logger().info(f'{what}: accepted {outcome.key}{filled}, held until '
                                       f'{TOPIC} has a subscriber')
            else:
                self.get_logger().info(f'{what}: accepted and published {outcome.key}{filled}')

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
        if self._http is not None:
            values.update(self._http.stats)
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
    return run_node(NODE_NAME, EventIntake, args, _CANNOT_START)


if __name__ == '__main__':
    sys.exit(main())
