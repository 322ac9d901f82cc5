"""v2x_console: the operators' web page of one station (RSU or vehicle), served over HTTP.

Subscribes (relative names; launch places them) v2x/alert, v2x/alert_sent, v2x/peers,
v2x/policy_state, v2x/clip, /diagnostics and, on a vehicle, fix (its own position);
keeps what they say in the console core and pushes each change to the page's live
stream. It is only a reader of the alert path: no publisher waits on it. Its actions
(inject a test alert, cancel an alert of this station, request a clip) publish on
v2x/alert_out and call v2x/request_clip, for callers holding the token or a password.
uvicorn runs in its own thread beside the rclpy executor; the state is shared under one
lock.
"""

from dataclasses import dataclass
import functools
import math
import os
import socket
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import NavSatFix, NavSatStatus

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.node_main import run_node
from v2x_common.params import (
    Check,
    Param,
    check,
    declare_parameters,
    in_range,
    not_empty,
    one_of,
)
from v2x_common.timeutil import fill_stamp
from v2x_common.worker import dead, exit_node
from v2x_console import conversions
from v2x_console.actions import ClipRequestBody, InjectRequest, load_credentials
from v2x_console.archive import ArchiveReader
from v2x_console.core import ConsoleSettings, ConsoleState, Event, cancellation
from v2x_console.held import HeldList
from v2x_console.http_app import (
    ActionFailed,
    Hub,
    NotCancellable,
    NotHeld,
    create_app,
    parse_allowed_hosts,
)
from v2x_conversion.alert import alert_from_msg, alert_to_msg
from v2x_http.server import HttpServer, bind_or_explain
from v2x_metrics.book import MetricsBook
from v2x_metrics.exposition import Exposition
from v2x_metrics.feed import MetricsFeed
from v2x_msgs.msg import Alert, Clip, HeldEvent, PeerArray, PolicyState
from v2x_msgs.srv import RequestClip, ResolveHeld

NODE_NAME = 'v2x_console'
#: how often the page's alert latency table is refreshed (when it changed)
LATENCY_PERIOD_S = 2.0
ROLES = ('rsu', 'vehicle')


def _site(low: float, high: float) -> Check:
    return check(f'NaN (unknown) or within [{low:g}, {high:g}]',
                 lambda v: None if math.isnan(v) or low <= v <= high
                 else f'{v!r} is not NaN or within [{low:g}, {high:g}]')


def _hosts_problem(text: str) -> str | None:
    try:
        parse_allowed_hosts(text)
    except ValueError as exc:
        return str(exc)
    return None


#: Every parameter, read once at start-up (read-only).
PARAMETERS = (
    Param('role', 'rsu', "'rsu' (actions: inject, cancel, clip) or 'vehicle' (read-only, "
          'shows the policy state and its own position)', one_of(*ROLES)),
    Param('console_bind', '127.0.0.1', 'address the page listens on (0.0.0.0 opens it to '
          'the network: set credentials first)', not_empty),
    Param('console_allowed_hosts', '', 'host names (or *.domain) the page may be reached '
          'by besides IP addresses, localhost and, when console_bind is not loopback, this '
          "machine's name; any other Host header is refused (DNS rebinding)",
          check('comma-separated host names or *.domain', _hosts_problem)),
    Param('station_label', '', "the 'station' label of /metrics ('' = the host name)"),
    Param('console_port', 8090, 'TCP port of the page (0 = any free port)',
          in_range(0, 65535)),
    Param('console_token_file', '', "file whose first line is the bearer token for actions "
          "('' = none)"),
    Param('console_password_file', '', "file of 'user:password' lines for HTTP basic on "
          "actions ('' = none)"),
    Param('archive_dir', '', "event_clipper's archive of clips ('' = no archive)"),
    Param('site_lat', math.nan, 'site latitude, the centre of the map (WGS84; NaN = '
          'unknown)', _site(-90.0, 90.0)),
    Param('site_lon', math.nan, 'site longitude (WGS84; NaN = unknown)', _site(-180.0, 180.0)),
    Param('tile_url', '', "optional map tiles, e.g. https://tile.example/{z}/{x}/{y}.png "
          "('' = none: the map is drawn from the data alone)"),
    Param('archive_scan_s', 5.0, 'how often the archive directory is listed',
          in_range(0.1, 3600.0)),
    Param('expire_period_s', 0.5, 'how often expired alerts are removed',
          in_range(0.05, 10.0)),
    Param('max_alerts', 2000, 'alerts shown at most (more are counted as overflow)',
          in_range(1, 100000)),
    Param('request_clip_timeout_s', 10.0, 'wait this long for event_clipper (and for '
          'hazard_detector on confirm or dismiss) to answer',
          in_range(0.1, 120.0)),
)


@dataclass(frozen=True)
class Settings:
    """Every parameter, read once at start-up (the PARAMETERS rows, in order)."""

    role: str
    console_bind: str
    console_allowed_hosts: str
    station_label: str
    console_port: int
    console_token_file: str
    console_password_file: str
    archive_dir: str
    site_lat: float
    site_lon: float
    tile_url: str
    archive_scan_s: float
    expire_period_s: float
    max_alerts: int
    request_clip_timeout_s: float


def read_settings(node: Node) -> Settings:
    """Declare every parameter (read-only, typed, checked); the node's frozen settings."""
    values = declare_parameters(node, PARAMETERS)
    for name in ('console_token_file', 'console_password_file', 'archive_dir'):
        values[name] = os.path.expanduser(values[name])
    return Settings(**values)


class ConsoleNode(Node):
    """The console: ROS inputs into the core, the core's events out to the page."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._http = None
        self.hub = None
        self.exit_code = None  # set when the HTTP server dies: node_main exits 1
        p = self.settings = read_settings(self)
        self.credentials = load_credentials(p.console_token_file,
                                            p.console_password_file)
        # a taken port stops the start here, naming the parameter, the cause and the fix
        sock = bind_or_explain(p.console_bind, p.console_port,
                               host_param='console_bind', port_param='console_port')
        self._lock = threading.Lock()
        self.held = HeldList()
        # /metrics and the page's latency table (docs/metrics.md): the same book as
        # v2x_metrics_exporter, fed from the console's own readers below (one reader per
        # topic); not of v2x/alert_out, which the console publishes on and whose readers
        # its inject counts as the gateway
        self.metrics = MetricsBook(p.station_label or socket.gethostname())
        self._metrics_feed = MetricsFeed(self, self.metrics, cmd_vel=p.role == 'vehicle',
                                         raised=False, shared=False)
        self._exposition = Exposition(self.metrics, self._metrics_feed.lock)
        self._latency_sent = None
        self.state = ConsoleState(ConsoleSettings(
            role=p.role, site_lat=p.site_lat, site_lon=p.site_lon,
            tile_url=p.tile_url, max_alerts=p.max_alerts,
            actions=self.credentials.configured and p.role == 'rsu'))
        self.hub = Hub(self.snapshot)
        self.archive = ArchiveReader(p.archive_dir)
        if p.role == 'rsu':  # the actions' publisher and client: an RSU's only
            self._pub_out = self.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
            self._clip_client = self.create_client(RequestClip, 'v2x/request_clip')
            # events hazard_detector holds for an operator (docs/detector.md)
            self._held_client = self.create_client(ResolveHeld, 'v2x/resolve_held')
            self.create_subscription(HeldEvent, 'v2x/held_events', self._on_held,
                                     qos.HELD_EVENTS)
        self.create_subscription(Alert, 'v2x/alert', self._on_alert, qos.ALERT_READER)
        self.create_subscription(Alert, 'v2x/alert_sent', self._on_alert_sent, qos.ALERT_SENT)
        self.create_subscription(PeerArray, 'v2x/peers', self._on_peers, qos.PEERS)
        self.create_subscription(PolicyState, 'v2x/policy_state', self._on_policy,
                                 qos.POLICY_STATE)
        self.create_subscription(Clip, 'v2x/clip', self._on_clip, qos.CLIP)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                 qos.DIAGNOSTICS)
        if p.role == 'vehicle':  # the vehicle's own position centres its map
            self.create_subscription(NavSatFix, 'fix', self._on_fix, qos.SENSOR_DATA)
        self.create_timer(p.expire_period_s, self._expire)
        self._scan_archive()
        self.create_timer(p.archive_scan_s, self._scan_archive)
        self.create_timer(LATENCY_PERIOD_S, self._push_latency)
        self.actions_done = {'injected': 0, 'cancelled': 0, 'clips_requested': 0,
                             'held_confirmed': 0, 'held_dismissed': 0}
        self._diag = Diagnostics(self, status_fn=self._health)
        app = create_app(self.snapshot, self.hub, self.archive, self, self.credentials,
                         p.tile_url, bind=p.console_bind,
                         extra_hosts=parse_allowed_hosts(p.console_allowed_hosts),
                         held_jpeg=self._held_jpeg, metrics=self._exposition.render)
        self._http = HttpServer(app, sock, logger=self.get_logger(),
                                on_death=functools.partial(exit_node, self), name='http')
        self.port = self._http.port
        self._http.start()
        auth = ('bearer token' if self.credentials.token else '') + \
            (' and ' if self.credentials.token and self.credentials.users else '') + \
            (f'{len(self.credentials.users)} basic user(s)' if self.credentials.users else '')
        self.get_logger().info(
            f'console ({p.role}) on http://{p.console_bind}:{self.port}/ ; actions '
            + (f'need {auth}' if self.credentials.configured else 'OFF (no credentials)')
            + f'; archive {p.archive_dir or "(none)"}')

    # --- state --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """The core's state now (called from the HTTP threads)."""
        with self._lock:
            snap = dict(self.state.snapshot(time.time()), held=self.held.json())
        snap['latency'] = self._latency()
        return snap

    def _latency(self) -> list[dict]:
        with self._metrics_feed.lock:
            return self.metrics.latency_table()

    def _push_latency(self) -> None:
        """The page's latency table, when it changed (every LATENCY_PERIOD_S at most)."""
        rows = self._latency()
        if rows != self._latency_sent:
            self._latency_sent = rows
            self.hub.publish([Event('latency', rows)])

    def _apply(self, method, *args, **kwargs) -> None:
        with self._lock:
            events = method(*args, **kwargs)
        self.hub.publish(events)

    @property
    def http_ready(self) -> bool:
        """True once uvicorn accepts connections."""
        return self._http is not None and self._http.started

    # --- inputs -------------------------------------------------------------------------
    def _on_alert(self, msg: Alert) -> None:
        self._metrics_feed.alert('v2x/alert', msg)
        self._apply(self.state.alert, alert_from_msg(msg), time.time())

    def _on_alert_sent(self, msg: Alert) -> None:
        self._metrics_feed.alert('v2x/alert_sent', msg)
        self._apply(self.state.alert, alert_from_msg(msg), time.time(), own=True)

    def _on_peers(self, msg: PeerArray) -> None:
        self._metrics_feed.peers(msg)
        self._apply(self.state.peers, conversions.peer_inputs(msg), time.time())

    def _on_policy(self, msg: PolicyState) -> None:
        self._metrics_feed.policy(msg)
        self._apply(self.state.policy, conversions.policy_input(msg))

    def _on_clip(self, msg: Clip) -> None:
        self._apply(self.state.clip, conversions.clip_input(msg))
        self._scan_archive()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self._metrics_feed.diagnostics(msg)
        self._apply(self.state.diagnostics, conversions.diagnostic_inputs(msg), time.time())

    def _on_fix(self, msg: NavSatFix) -> None:
        if msg.status.status >= NavSatStatus.STATUS_FIX:
            self._apply(self.state.position, msg.latitude, msg.longitude, time.time())

    def _on_held(self, msg: HeldEvent) -> None:
        self._apply(self.held.update, conversions.held_input(msg), time.time())

    def _held_jpeg(self, hold_id: str) -> bytes | None:
        with self._lock:
            return self.held.jpeg(hold_id)

    def _expire(self) -> None:
        self._apply(self.state.expire, time.time())

    def _scan_archive(self) -> None:
        clips = self.archive.read()
        self._apply(self.state.archive, clips)

    # --- actions (called from the HTTP worker threads) ----------------------------------
    def _check_rsu(self, what: str) -> None:
        if self.settings.role != 'rsu':
            raise ActionFailed(f'{what}: this console runs on a vehicle (role vehicle)')

    def inject(self, request: InjectRequest) -> dict:
        """Publish a test alert on v2x/alert_out, as v2x_inject does."""
        self._check_rsu('inject')
        if self._pub_out.get_subscription_count() == 0:
            raise ActionFailed(f'no subscriber on {self._pub_out.topic_name} (is the gateway '
                               'running?)')
        msg = alert_to_msg(request, frame_id='')  # identity and times: the gateway's
        self._pub_out.publish(msg)
        self._done('injected')
        self.get_logger().info(f'operator injected a test alert (kind {msg.kind}, severity '
                               f'{msg.severity}, road {msg.road!r})')
        return {'status': 'published', 'topic': self._pub_out.topic_name}

    def cancel(self, source_id: str, sequence: int) -> dict:
        """Publish the cancellation of an active alert this station sent."""
        self._check_rsu('cancel')
        with self._lock:
            alert = self.state.own_alert(source_id, sequence)
        if alert is None:
            raise NotCancellable(f'no active alert {source_id}/{sequence} sent by this station')
        if self._pub_out.get_subscription_count() == 0:
            raise ActionFailed(f'no subscriber on {self._pub_out.topic_name}')
        self._pub_out.publish(alert_to_msg(cancellation(alert), frame_id=''))
        self._done('cancelled')
        self.get_logger().info(f'operator cancelled {source_id}/{sequence}')
        return {'status': 'published', 'id': f'{source_id}/{sequence}'}

    def request_clip(self, request: ClipRequestBody) -> dict:
        """Call v2x/request_clip and wait for the answer."""
        self._check_rsu('request_clip')
        if not self._clip_client.service_is_ready():
            raise ActionFailed(f'{self._clip_client.srv_name} is not served (is event_clipper '
                               'running?)')
        req = RequestClip.Request()
        fill_stamp(req.t0, request.t0)
        req.clip_id = request.clip_id
        req.pre_s, req.post_s = request.pre_s, request.post_s
        result = self._call(self._clip_client, req, 'event_clipper')
        self._done('clips_requested')
        self.get_logger().info(f'operator requested a clip at {request.t0:.3f}: '
                               f'accepted={result.accepted}')
        return {'accepted': result.accepted, 'path': result.path, 'message': result.message}

    def resolve_held(self, hold_id: str, confirm: bool, by: str) -> dict:
        """Confirm or dismiss an event hazard_detector holds (v2x/resolve_held)."""
        self._check_rsu('confirm' if confirm else 'dismiss')
        if not self._held_client.service_is_ready():
            raise ActionFailed(f'{self._held_client.srv_name} is not served (is '
                               'hazard_detector running?)')
        req = ResolveHeld.Request(hold_id=hold_id, decided_by=by,
                                  decision=ResolveHeld.Request.CONFIRM if confirm
                                  else ResolveHeld.Request.DISMISS)
        result = self._call(self._held_client, req, 'hazard_detector')
        if not result.accepted:
            raise NotHeld(result.message)
        self._done('held_confirmed' if confirm else 'held_dismissed')
        self.get_logger().info(f'{by!r} {"confirmed" if confirm else "dismissed"} held event '
                               f'{hold_id!r}')
        return {'status': result.message, 'id': hold_id}

    def _call(self, client, request, who: str):
        """A service's answer (from an HTTP worker thread: the executor delivers it), or
        ActionFailed after request_clip_timeout_s."""
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.settings.request_clip_timeout_s):
            future.cancel()
            raise ActionFailed(f'{who} did not answer in time')
        return future.result()

    def _done(self, action: str) -> None:
        with self._lock:
            self.actions_done[action] += 1

    # --- health -------------------------------------------------------------------------
    def _health(self):
        with self._lock:
            values = dict(self.state.counts)
            values.update(self.actions_done)
        values.update(self.hub.stats(), events_unencodable=self.hub.unencodable,
                      port=self.port)
        values.update(self._http.worker.status() if self._http else {})
        if self._http is not None and dead([self._http.worker]):
            return ERROR, 'HTTP server died', values
        if not self.http_ready:
            return WARN, 'HTTP not serving yet', values
        return OK, f'serving on port {self.port}', values

    def destroy_node(self):
        """End the live streams and stop HTTP, then the node."""
        if self.hub is not None:
            self.hub.close()
        if self._http is not None:
            self._http.stop()
            self._http = None
        return super().destroy_node()


def main(args=None) -> int:
    """Run the console until interrupted; a bad parameter exits 2 naming it."""
    return run_node(NODE_NAME, ConsoleNode, args)


if __name__ == '__main__':
    sys.exit(main())
