"""alert_gateway: the node between ROS topics and the signed UDP multicast link.

Both roles receive (alerts -> v2x/alert, CSV, v2x/markers; heartbeats -> v2x/heartbeat,
v2x/peers) and send heartbeats when they hold a signing key. role 'rsu' also sends:
v2x/alert_out -> identity and defaults -> sign -> multicast now and every
repeat_interval_s until expiry -> the new alert on v2x/alert_sent.

The gateway also reads v2x/alert: a message there that changes an event it delivered
(a cancel, an update it did not publish) came from someone else on the ROS graph, so it
re-asserts its own version of the event, as a newer version (docs/ARCHITECTURE.md,
"Trust boundary of the ROS graph").
"""

from dataclasses import dataclass, fields, replace
import json
import os
from pathlib import Path
import secrets
import sys
import threading
import time

from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from v2x_bridge import conversions, federation, net
from v2x_bridge.csvlog import RotatingCsv, row
from v2x_bridge.federation import GatewayFederation
from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.gcfreeze import frozen_after
from v2x_common.node_main import run_node
from v2x_common.params import (
    Param,
    ParameterError,
    check,
    declare_parameters,
    in_range,
    make_dirs,
    one_of,
)
from v2x_common.take import queued
from v2x_common.worker import Worker
from v2x_msgs.msg import Alert, Heartbeat, PeerArray
from v2x_protocol import keys
from v2x_protocol.peers import FORGET_AFTER_S, PeerTable
from v2x_protocol.receiver import (
    AlertDelivered,
    AlertRepeated,
    DatagramRejected,
    HeartbeatReceived,
    Receiver,
)
from v2x_protocol.sender import (
    InvalidTiming,
    Outbox,
    OutOfRangeInput,
    Sender,
    UnknownEvent,
    fill_identity,
)
from v2x_protocol.state import OutboxFile, SequenceStore
from v2x_protocol.station import default_station_id, pseudonym
from v2x_protocol.wire import (
    AUTH_NONE,
    MAX_TIME_NS,
    AlertData,
    HeartbeatData,
    InvalidMessage,
)

NODE_NAME = 'alert_gateway'
ROLES = {'rsu': Heartbeat.ROLE_RSU, 'vehicle': Heartbeat.ROLE_VEHICLE}
ID_CONFLICT_ERROR_S = 60.0  # diagnostics ERROR this long after an id conflict was heard
HIGH_WATER_FILE = 'high_water.json'
HIGH_WATER_SAVE_S = 10.0


MAX_MARKED_ALERTS = 1000  # the newest live alerts drawn (markers refresh at 1 Hz)
AUTH_REASONS = ('unsigned', 'unknown_key', 'bad_signature')
AUTH_WARN_S = 10.0       # diagnostics WARN while authentication failures are this recent
GIL_SWITCH_S = 0.0005    # let the receive thread in quickly (default 5 ms)
GRAPH_LOG_PERIOD_S = 10.0  # at most one summary of foreign v2x/alert messages this often
# a re-asserted version is this much newer than the foreign one it undoes (consumers hold
# stamps as float seconds: 1 ns would be lost)
REASSERT_STEP_NS = 1_000_000
SEEN_BATCH = 200  # messages of v2x/alert checked per wake-up of that subscription
RX_WAIT_S = 0.2          # the receive thread checks for shutdown this often
RX_BATCH = 256           # datagrams read per wake-up before the counters are merged
DROP_LOG_PERIOD_S = 10.0  # at most one summary of dropped datagrams this often


class AlreadyExpired(InvalidMessage):
    """An alert on v2x/alert_out whose detection_time + validity_s has passed."""


# why an alert on v2x/alert_out was dropped: counter dropped_alert_out_<reason>
_ALERT_OUT_REASONS = ((InvalidTiming, 'bad_time'), (OverflowError, 'bad_time'),
                      (AlreadyExpired, 'expired'), (OSError, 'state_error'),
                      (UnknownEvent, 'unknown_event'), (OutOfRangeInput, 'out_of_range'))


def _alert_out_reason(exc: Exception) -> str:
    return next((r for t, r in _ALERT_OUT_REASONS if isinstance(exc, t)), 'invalid')


def _alert_msg(a: AlertData, path: int, authenticated: bool) -> Alert:
    msg = conversions.alert_to_msg(a)
    msg.path, msg.authenticated = path, authenticated
    return msg


def _same_version(a: AlertData, b: AlertData) -> bool:
    """The same content but perhaps the header stamp (NaN equals NaN)."""
    for f in fields(AlertData):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name != 'stamp_ns' and x != y and not (x != x and y != y):
            return False
    return True


@dataclass(frozen=True)
class Settings:
    """Every parameter, read once at start-up."""

    role: str
    station_id: str
    group: str
    port: int
    iface: str
    ttl: int
    loopback: bool
    auth_mode: str
    key_file: str
    accept_key_files: tuple[str, ...]
    trust_store: str
    insecure: bool
    repeat_interval_s: float
    heartbeat_period_s: float
    stale_after: int
    max_clock_skew_s: float
    state_dir: str
    csv_log: str
    csv_max_bytes: int
    csv_keep: int
    origin_lat: float
    origin_lon: float
    default_validity_s: float
    pseudonym_period_s: float = 0.0


def _station_id(value: str) -> str | None:
    if len(value.encode()) > 64 or value.strip() != value:
        return 'at most 64 bytes, no surrounding spaces'
    return None


PARAMETERS = (
    Param('role', 'rsu', "'rsu' (sends alerts and receives peers) or 'vehicle' (receives)",
          one_of(*ROLES)),
    Param('station_id', '', 'this station; empty = rsu_<hostname> (RSU) or a random '
          'pseudonym vehicle_<hex> (vehicle)',
          check('at most 64 bytes', _station_id)),
    Param('group', net.DEFAULT_GROUP, 'IPv4 multicast group'),
    Param('port', net.DEFAULT_PORT, 'UDP port', in_range(1, 65535)),
    Param('iface', '', "interface address or name ('' = kernel's choice)"),
    Param('ttl', 1, 'multicast TTL', in_range(0, 255)),
    Param('loopback', True, 'also deliver our multicast to this host (one-machine demo)'),
    Param('auth_mode', 'hmac', 'hmac | ed25519 | none (none needs insecure: true)',
          one_of('hmac', 'ed25519', 'none')),
    Param('key_file', '', 'HMAC secret file (else env V2X_KEY) or Ed25519 private key (PEM)'),
    Param('accept_key_files', '', 'comma-separated extra HMAC secret files accepted (rotation)'),
    Param('trust_store', '', 'ed25519: file of trusted public keys (v2x_keygen prints entries)'),
    Param('insecure', False, 'accept and send unsigned datagrams'),
    Param('repeat_interval_s', 1.0, 'resend period of each live alert',
          in_range(0.01, 3600.0)),
    Param('heartbeat_period_s', 10.0, 'heartbeat period', in_range(0.05, 3600.0)),
    Param('stale_after', 3, 'a peer is stale after this many missed heartbeat periods',
          in_range(1, 1000)),
    Param('max_clock_skew_s', 30.0, 'accepted |send time - our clock|',
          in_range(0.001, 86400.0)),
    Param('state_dir', '~/.local/state/v2x', 'where the assigned sequence is persisted'),
    Param('csv_log', '', "CSV log of delivered alerts ('' = off)"),
    Param('csv_max_bytes', 10_000_000, 'rotate the CSV log beyond this size',
          in_range(256, 2**40)),
    Param('csv_keep', 5, 'rotated CSV files kept', in_range(0, 1000)),
    Param('origin_lat', 0.0, 'latitude of the map frame origin (markers)',
          in_range(-90.0, 90.0)),
    Param('origin_lon', 0.0, 'longitude of the map frame origin (markers)',
          in_range(-180.0, 180.0)),
    Param('default_validity_s', 600.0, 'validity given to alerts that come with 0',
          in_range(0.1, 86400.0)),
    Param('pseudonym_period_s', 0.0, "vehicle with station_id '': draw a new pseudonym this "
          'often (0 = once per start)', in_range(0.0, 86400.0)),
) + federation.PARAMETERS  # broker_* (issue 15): read by GatewayFederation


def read_settings(node: Node) -> Settings:
    """Declare every parameter, read them once, validate; raises ParameterError."""
    values = declare_parameters(node, PARAMETERS)
    values['station_id'] = values['station_id'] or default_station_id(values['role'])
    if values['auth_mode'] == 'none' and not values['insecure']:
        raise ParameterError('auth_mode', "'none' needs 'insecure: true'")
    try:
        net.check_group(values['group'], values['port'])
    except ValueError as exc:
        raise ParameterError('group', str(exc)) from None
    values['accept_key_files'] = tuple(
        p.strip() for p in values['accept_key_files'].split(',') if p.strip())
    values['state_dir'] = os.path.expanduser(values['state_dir'])
    values['csv_log'] = os.path.expanduser(values['csv_log'])
    for name in federation.NAMES:  # federation: GatewayFederation reads and checks them
        del values[name]
    return Settings(**values)


class AlertGateway(Node):
    """The gateway node; parameters decide its role."""

    def __init__(self, **kwargs):
        # What destroy_node uses exists before anything can fail (a bad parameter).
        self._rx = self._tx = self._rx_worker = self._saver = self._stop = None
        self._federation = None
        super().__init__(NODE_NAME, **kwargs)
        self.settings = s = read_settings(self)
        self._lock = threading.Lock()
        self._counts = {'received': 0, 'reasserted': 0, 'foreign_alerts': 0, 'delivered': 0,
                        'repeats': 0, 'heartbeats': 0, 'sent': 0, 'send_errors': 0,
                        'csv_errors': 0, 'invalid_input': 0, 'internal_errors': 0}
        self._dropped: dict[str, int] = {}  # reason -> datagrams dropped
        self._last_rejected = None  # the latest DatagramRejected, for the log summary
        self._last_internal = None  # the latest internal error of the receive path
        self._drop_log_at = -DROP_LOG_PERIOD_S
        self._drop_logged: dict[str, int] = {}  # the counts the last summary reported
        self._last_auth_drop = -AUTH_WARN_S
        self._started = time.monotonic()
        self._live: dict[tuple[str, int], object] = {}
        # the version of each event last published on v2x/alert (with its path and whether
        # it was authenticated), until it expires: what a foreign message is checked against
        self._published: dict[tuple[str, int], tuple[AlertData, int, bool]] = {}
        self._graph_logged = 0  # reasserted at the last summary
        # (kernel_drops, peers_refused, reasserted) last seen by _health, and when each moved
        self._pressure_seen = (0, 0, 0)
        self._pressure_at = [-AUTH_WARN_S] * 3
        self._graph_log_at = -GRAPH_LOG_PERIOD_S
        self._last_foreign = ''
        self._markers_dirty = True
        self._signer, keyring = self._load_keys(s)
        dirs = {'state_dir': s.state_dir}
        if s.csv_log:
            dirs['csv_log'] = os.path.dirname(os.path.abspath(s.csv_log))
        for line in make_dirs(**dirs):  # said when made; refused when nobody's or unwritable
            self.get_logger().info(line)
        try:  # the station's origin and sequences (shared with the CLI tools)
            self._sequences = SequenceStore(Path(s.state_dir))
        except (OSError, ValueError) as exc:
            raise ParameterError('state_dir', str(exc)) from None
        # a vehicle without a station_id uses random pseudonyms (and no persisted origin)
        self._pseudonymous = s.role == 'vehicle' and not self.get_parameter('station_id').value
        self._station_id = s.station_id
        self._sender = (Sender(self._signer, origin=self._origin())
                        if (self._signer or s.insecure) else None)
        own = () if self._sender is None else (self._sender.session,)
        self._receiver = Receiver(keyring, s.max_clock_skew_s, own_sessions=own,
                                  high_water=self._load_high_water())
        if self._sender is not None:
            self._receiver.own_ids[self._station_id] = (self._sender.origin,
                                                        self._sender.session)
        self._id_conflict_at = -ID_CONFLICT_ERROR_S
        self._clock_steps_seen = 0
        self._high_water_saved = time.monotonic()
        # a peer is forgotten after 10 stale limits of our own period, at least 10 minutes
        self._peers = PeerTable(s.stale_after, forget_after_s=max(
            FORGET_AFTER_S, 10 * s.stale_after * s.heartbeat_period_s))
        try:
            self._csv = (RotatingCsv(s.csv_log, s.csv_max_bytes, s.csv_keep) if s.csv_log
                         else None)
        except OSError as exc:
            raise ParameterError('csv_log', str(exc)) from None
        if s.role == 'rsu':
            if self._sender is None:
                raise ParameterError('key_file', 'an RSU needs a signing key (or insecure: true)')
            self._outbox_file = OutboxFile(s.state_dir)
        try:
            self._rx = net.open_receiver(s.group, s.port, s.iface, timeout_s=0.0)
        except (OSError, ValueError) as exc:
            raise ParameterError('iface', f'group/port/iface: {exc}') from None
        try:
            self._tx = net.open_sender(s.group, s.port, s.iface, s.ttl, s.loopback)
        except (OSError, ValueError) as exc:
            self._rx.close()
            raise ParameterError('iface', f'iface/ttl: {exc}') from None

        self._reader = net.BatchReader(self._rx, RX_BATCH)
        self._rcvbuf = net.rcvbuf_bytes(self._rx)
        if self._rcvbuf < 2 * net.RCVBUF_BYTES:
            self.get_logger().info(
                f'receive buffer {self._rcvbuf} bytes (asked {2 * net.RCVBUF_BYTES}); '
                'a flood fills it sooner: raise net.core.rmem_max')
        self._pub_alert = self.create_publisher(Alert, 'v2x/alert', qos.ALERT)
        self._seen_sub = self.create_subscription(Alert, 'v2x/alert', self._on_alert_seen,
                                                  qos.ALERT_READER)
        self._pub_hb = self.create_publisher(Heartbeat, 'v2x/heartbeat', qos.HEARTBEAT)
        self._pub_peers = self.create_publisher(PeerArray, 'v2x/peers', qos.PEERS)
        self._pub_markers = self.create_publisher(MarkerArray, 'v2x/markers', qos.MARKERS)
        self._outbox = Outbox(s.repeat_interval_s)
        if s.role == 'rsu':
            now = time.time_ns()
            restored = self._outbox_file.load(now)
            for alert in restored:  # repeats resume at once, in a new session
                self._outbox.put(alert, now, due_now=True)
            if restored:
                self.get_logger().info(f'repeating {len(restored)} live alerts from before')
            self._pub_sent = self.create_publisher(Alert, 'v2x/alert_sent', qos.ALERT_SENT_WRITER)
            self.create_subscription(Alert, 'v2x/alert_out', self._on_alert_out,
                                     qos.ALERT_OUT_READER)
            # fine ticks spread the repeats instead of sending them in bursts
            self.create_timer(min(s.repeat_interval_s / 20.0, 0.05), self._on_repeat_timer)
        if self._sender is not None:
            self.create_timer(s.heartbeat_period_s, self._send_heartbeat)
            if self._pseudonymous and s.pseudonym_period_s > 0:
                self.create_timer(s.pseudonym_period_s, self._rotate_pseudonym)
        self.create_timer(1.0, self._on_second)
        self._diag = Diagnostics(self, status_fn=self._health)
        # --- federation (issue 15): the broker path beside the radio path ---
        self._ingest_lock = threading.Lock()  # UDP thread and paho's thread share the Receiver
        self._peer_paths: dict[str, tuple[int, bool]] = {}  # source -> (path, authenticated)
        try:
            self._federation = GatewayFederation(
                self, role=s.role, station_id=s.station_id, site=(s.origin_lat, s.origin_lon),
                heartbeat_period_s=s.heartbeat_period_s, stale_after=s.stale_after,
                deliver=lambda data: self.handle_datagram(data, Alert.PATH_BROKER))
        except ParameterError:
            self._rx.close()
            self._tx.close()
            raise
        # --- end federation ---
        self._stop = threading.Event()
        # Supervised (issue 11): an error escaping the loop is logged at ERROR, counted,
        # shown in diagnostics (ERROR for worker.FAILED_ERROR_S) and the loop restarted with
        # backoff. Restarted rather than exiting the process: composed with speed_policy
        # (vehicle_stack) an exit would take the cmd_vel filter down too, and the
        # Receiver's replay/duplicate state and the outbox survive an in-process restart.
        self._rx_worker = Worker('v2x_rx', self._receive_loop, logger=self.get_logger(),
                                 restart=True)
        self._rx_worker.start()  # after the assignment: the loop reads its stopping event
        self._save_wanted = threading.Event()
        self._outbox_snapshot = None
        self._saver = None
        if s.role == 'rsu':
            # Supervised: an unexpected error is logged at ERROR, counted and the saver
            # restarted, never a saver silently dead while the outbox goes unsaved.
            self._saver = Worker('v2x_save', self._save_loop, logger=self.get_logger(),
                                 restart=True, wake=self._save_wanted.set).start()
        if self._sender is not None:
            self._send_heartbeat()
        self.get_logger().info(
            f'{s.role} {self._station_id} on {s.group}:{s.port} iface={s.iface or "default"} '
            f'auth={s.auth_mode}' + (' INSECURE' if s.insecure else ''))

    # --- set-up ---------------------------------------------------------------------
    def _load_keys(self, s: Settings):
        signer = None
        if s.insecure and s.auth_mode != 'none':
            raise ParameterError('insecure', f'true together with auth_mode {s.auth_mode}: a '
                                 'gateway either signs and checks, or runs insecure '
                                 '(auth_mode none), not both')
        try:
            env_key = s.auth_mode == 'hmac' and os.environ.get(keys.ENV_KEY)
            if s.auth_mode != 'none' and (s.role == 'rsu' or s.key_file or env_key):
                signer = keys.make_signer(s.auth_mode, s.key_file)
            if s.auth_mode == 'ed25519' and signer is not None and not s.trust_store:
                # an RSU without a trust store hears only stations sharing its own key
                keyring = keys.Keyring(ed25519_keys=[keys.Ed25519Verifier(signer.public_raw)])
            else:
                keyring = keys.make_keyring(
                    s.auth_mode, key_file=s.key_file if s.auth_mode == 'hmac' else '',
                    accept_key_files=s.accept_key_files, trust_store=s.trust_store,
                    insecure=s.insecure)
        except keys.KeyConfigError as exc:
            name = 'trust_store' if 'trust store' in str(exc) else 'key_file'
            text = str(exc)
            if text.startswith('no HMAC key'):  # keys' wording names the CLIs' --hmac-key
                text = (f'no HMAC key: give key_file:=FILE (launch) or -p key_file:=FILE, '
                        f'or set {keys.ENV_KEY}; or -p insecure:=true on purpose (testing only)')
            raise ParameterError(name, text) from None
        return signer, keyring

    # --- sending --------------------------------------------------------------------
    def _send(self, payload) -> None:
        data = self._sender.datagram(payload, time.time_ns())
        self._transmit(data)
        self._federation.sent(payload, data)  # federation: also to the broker (RSU)

    def _transmit(self, data: bytes) -> None:
        try:
            self._tx.send(data)
        except OSError as exc:  # link down, firewall: count, keep going
            self._count('send_errors')
            self.get_logger().warning(f'send failed: {exc.strerror}', throttle_duration_sec=5.0)
            return
        self._count('sent')

    def _on_alert_out(self, msg: Alert) -> None:
        """Take in, sign and send one alert; bad input is dropped and counted, never raised
        (an exception escaping a callback would stop the gateway)."""
        s = self.settings
        now = time.time_ns()
        try:
            alert = fill_identity(conversions.alert_from_msg(msg, strict=True),
                                  station_id=s.station_id, now_ns=now,
                                  default_validity_s=s.default_validity_s,
                                  next_sequence=self._sequences.next,
                                  previous=self._outbox.get)
            if alert.expires_ns <= now:
                raise AlreadyExpired('already expired (detection_time + validity_s)')
            data = self._sender.datagram(alert, now)
        except (InvalidMessage, OSError, ValueError, OverflowError) as exc:
            self._drop_alert_out(_alert_out_reason(exc), exc)
            return
        except Exception as exc:  # noqa: BLE001 -- one bad alert must not stop the node
            self._count('internal_errors')
            self._drop_alert_out('internal', exc, error=True)
            return
        self._outbox.put(alert, now)
        self._transmit(data)
        self._federation.sent(alert, data)  # federation: also to the broker (RSU)
        # produced (and signed) here: local and trusted, as Alert.msg defines them
        sent = _alert_msg(alert, Alert.PATH_LOCAL, True)
        sent.origin = self._sender.origin  # with source_id and sequence: the event (clips)
        self._pub_sent.publish(sent)

    def _drop_alert_out(self, reason: str, exc: Exception, error: bool = False) -> None:
        with self._lock:
            self._counts['invalid_input'] += 1
            key = f'alert_out_{reason}'
            self._dropped[key] = self._dropped.get(key, 0) + 1
        log = self.get_logger().error if error else self.get_logger().warning
        log(f'dropped alert from v2x/alert_out ({reason}): {type(exc).__name__}: {exc}',
            throttle_duration_sec=5.0)

    def _on_repeat_timer(self) -> None:
        for alert in self._outbox.due(time.time_ns()):
            self._send(alert)

    def _send_heartbeat(self) -> None:
        s = self.settings
        level, message, _ = self._health()
        active = len(self._outbox) if s.role == 'rsu' else len(self._live)
        hb = HeartbeatData(self._station_id, ROLES[s.role], 0 if level == OK else 1, message,
                           active, time.monotonic() - self._started, s.heartbeat_period_s)
        self._send(hb)

    # --- receiving ------------------------------------------------------------------
    def _receive_loop(self) -> None:
        """Receive worker: wake on the socket, drain it in batches, until destroy_node."""
        stopping = self._rx_worker.stopping
        while not stopping.is_set():
            try:
                batch = self._reader.read(RX_WAIT_S)
            except OSError:
                if stopping.wait(0.1):
                    return
                continue
            if batch:
                self.handle_datagrams(batch)

    def handle_datagram(self, data: bytes, path: int = Alert.PATH_RADIO) -> None:
        """Run one datagram through the pipeline (never raises); see handle_datagrams."""
        self.handle_datagrams((data,), path)

    def handle_datagrams(self, batch, path: int = Alert.PATH_RADIO) -> None:
        """Run datagrams that came by path (Alert.PATH_RADIO: multicast, the receive
        thread; PATH_BROKER: federation, paho's thread) through the pipeline and act on
        each outcome (never raises). One Receiver serves both paths, so an alert heard on
        both is delivered once.

        A rejected datagram costs one counter increment here: no log call, no lock (the
        counts of the batch are merged once at its end); _on_second logs a summary at
        most every DROP_LOG_PERIOD_S. A delivered alert is published at once."""
        rejected: dict[str, int] = {}
        last = None
        receive, fed = self._receiver.receive, self._federation
        with self._ingest_lock:
            for data in batch:
                now = time.time_ns()
                try:
                    if fed.duplicate(data):  # federation: heard already by the other path
                        continue
                    event = receive(data, now, time.monotonic_ns())
                    if type(event) is DatagramRejected:
                        rejected[event.reason] = rejected.get(event.reason, 0) + 1
                        last = event
                        continue
                    fed.accepted(data)
                    self._act(event, now, path)
                except Exception as exc:  # noqa: BLE001 -- the receive thread must not die
                    with self._lock:
                        self._counts['internal_errors'] += 1
                        self._last_internal = (f'receive path failed: '
                                               f'{type(exc).__name__}: {exc}')
        with self._lock:
            self._counts['received'] += len(batch)
            for reason, n in rejected.items():
                self._dropped[reason] = self._dropped.get(reason, 0) + n
            if last is not None:
                self._last_rejected = last
                if any(r in rejected for r in AUTH_REASONS):
                    self._last_auth_drop = time.monotonic()

    def _act(self, event, now: int, path: int) -> None:
        """What an accepted datagram leads to: publish, log, count."""
        if isinstance(event, AlertDelivered):
            a = event.alert
            with self._lock:
                self._counts['delivered'] += 1
                if a.cancelled:
                    self._live.pop(a.key, None)
                else:
                    self._live[a.key] = a
                self._markers_dirty = True
            self.publish_alert(a, path, event.envelope.auth != AUTH_NONE)
            if self._csv is not None:
                try:
                    self._csv.append(row(a, event.change, now / 1e9))
                except OSError as exc:
                    self._count('csv_errors')
                    self.get_logger().warning(f'CSV log: {exc}', throttle_duration_sec=10.0)
        elif isinstance(event, AlertRepeated):
            self._count('repeats')
        elif isinstance(event, HeartbeatReceived):
            self._count('heartbeats')
            with self._lock:
                accepted = self._peers.heard(event.heartbeat, now, event.clock_offset_s)
                if accepted:
                    self._peer_paths[event.heartbeat.source_id] = (
                        path, event.envelope.auth != AUTH_NONE)
            if not accepted:
                return  # the peer table is full of live peers (counted as peers_refused)
            self._pub_hb.publish(conversions.heartbeat_to_msg(event.heartbeat,
                                                              event.envelope.send_time_ns))

    # --- the ROS graph ----------------------------------------------------------------
    def publish_alert(self, a: AlertData, path: int, authenticated: bool) -> None:
        """Publish a version of an event on v2x/alert (path: Alert.PATH_*). Every
        publication there goes through here: the version is what _on_alert_seen defends
        against foreign changes."""
        with self._lock:
            self._published[a.key] = (a, path, authenticated)
        self._pub_alert.publish(_alert_msg(a, path, authenticated))

    def _on_alert_seen(self, msg: Alert) -> None:
        """Messages on v2x/alert (mostly our own): this one and those queued behind it
        (a burst we delivered comes back as a burst)."""
        self._check_seen(msg)
        for more in queued(self._seen_sub, SEEN_BATCH - 1):
            self._check_seen(more)

    def _check_seen(self, msg: Alert) -> None:
        """Re-assert our version of an event when a message would replace it for a
        consumer (speed_policy takes a version with a stamp at least as new) with
        different content."""
        seen = conversions.alert_from_msg(msg)
        with self._lock:
            own, path, authenticated = self._published.get(seen.key, (None, 0, False))
            if own is None:
                self._counts['foreign_alerts'] += 1  # not ours (denm_gateway's, or forged)
                return
            if seen.stamp_ns < own.stamp_ns or _same_version(seen, own):
                return  # an older version, or ours again
            again = replace(own, stamp_ns=min(max(own.stamp_ns, seen.stamp_ns + REASSERT_STEP_NS),
                                              MAX_TIME_NS - 1))
            self._published[seen.key] = (again, path, authenticated)
            self._counts['reasserted'] += 1
            what = 'a cancellation' if seen.cancelled else 'a different version'
            self._last_foreign = (f'{seen.source_id}/{seen.sequence}: {what} this gateway '
                                  'did not publish; its own version re-published')
        self._pub_alert.publish(_alert_msg(again, path, authenticated))

    def _log_graph(self) -> None:
        """At most every GRAPH_LOG_PERIOD_S: one warning when changes were undone. Alerts of
        events we never delivered are only counted (denm_gateway publishes its own)."""
        now = time.monotonic()
        if now - self._graph_log_at < GRAPH_LOG_PERIOD_S:
            return
        with self._lock:
            reasserted, last = self._counts['reasserted'], self._last_foreign
        if reasserted == self._graph_logged:
            return
        self._graph_log_at = now
        self.get_logger().warning(
            f'v2x/alert carried {reasserted - self._graph_logged} changes to live events that '
            f'this gateway did not publish (someone else on the ROS graph); undone by '
            f're-publishing its own versions; last: {last}')
        self._graph_logged = reasserted

    def _log_drops(self) -> None:
        """At most every DROP_LOG_PERIOD_S: one line summing the datagrams dropped since."""
        now = time.monotonic()
        if now - self._drop_log_at < DROP_LOG_PERIOD_S:
            return
        with self._lock:
            dropped = dict(self._dropped)
            last, self._last_rejected = self._last_rejected, None
            internal, self._last_internal = self._last_internal, None
        dropped['kernel_buffer_full'] = self._reader.kernel_drops
        since = {k: v - self._drop_logged.get(k, 0) for k, v in dropped.items()}
        since = {k: v for k, v in since.items() if v > 0}
        if internal is not None:
            self.get_logger().error(internal)
        if not since:
            return
        self._drop_log_at, self._drop_logged = now, dropped
        reasons = ', '.join(f'{k} {v}' for k, v in sorted(since.items()))
        example = f'; last: {last.reason}: {last.detail}' if last is not None else ''
        self.get_logger().warning(f'dropped {sum(since.values())} datagrams ({reasons})'
                                  f'{example}')

    # --- periodic -------------------------------------------------------------------
    def _on_second(self) -> None:
        now = time.time_ns()
        self._watch_protocol()
        if self.settings.role == 'rsu' and self._outbox.take_changed():
            # the file is written by a helper thread: JSON of many alerts takes a while
            with self._lock:
                self._outbox_snapshot = self._outbox.active()
            self._save_wanted.set()
        with self._lock:
            for key in [k for k, a in self._live.items() if a.expires_ns <= now]:
                del self._live[key]
                self._markers_dirty = True
            for key in [k for k, v in self._published.items() if v[0].expires_ns <= now]:
                del self._published[key]
            peers = self._peers.snapshot(now)
            if len(self._peer_paths) > len(peers):  # forgotten or evicted peers' paths go too
                held = {p.source_id for p in peers}
                self._peer_paths = {k: v for k, v in self._peer_paths.items() if k in held}
            paths = dict(self._peer_paths)
        peer_msg = conversions.peers_to_msg(peers)
        for p in peer_msg.peers:
            p.path, p.authenticated = paths.get(p.source_id, (Alert.PATH_RADIO, False))
        self._pub_peers.publish(peer_msg)
        self._publish_markers()
        self._log_drops()
        self._log_graph()

    def _save_loop(self) -> None:
        """Helper thread: write the latest outbox snapshot whenever one is handed over."""
        while not self._stop.is_set():
            if not self._save_wanted.wait(timeout=0.5):
                continue
            self._save_wanted.clear()
            with self._lock:
                alerts, self._outbox_snapshot = self._outbox_snapshot, None
            if alerts is None:
                continue
            try:
                self._outbox_file.save(alerts)
            except OSError as exc:
                self.get_logger().warning(f'cannot save the outbox: {exc}',
                                          throttle_duration_sec=60.0)

    def _publish_markers(self) -> None:
        """Publish the live alerts as markers when they changed (called at 1 Hz)."""
        with self._lock:
            if not self._markers_dirty:
                return
            self._markers_dirty = False
            alerts = list(self._live.values())[-MAX_MARKED_ALERTS:]
        s = self.settings
        stamp = self.get_clock().now().to_msg()
        self._pub_markers.publish(conversions.markers_from_alerts(
            alerts, (s.origin_lat, s.origin_lon), stamp))

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def counters(self) -> dict[str, int]:
        """A copy of the counters (dropped ones as dropped_<reason>)."""
        with self._lock:
            out = dict(self._counts)
            out.update({f'dropped_{k}': v for k, v in self._dropped.items()})
            out['kernel_drops'] = self._reader.kernel_drops
            out['rcvbuf_bytes'] = self._rcvbuf
            out['live_alerts'] = len(self._live)
            out['peers'] = len(self._peers)
            out['peers_refused'] = self._peers.refused
            out['peers_evicted'] = self._peers.evicted
            out['peers_forgotten'] = self._peers.forgotten
            out['outbox'] = len(self._outbox)
        out['id_conflicts'] = self._receiver.counters['id_conflicts']
        out['clock_steps'] = self._receiver.counters['clock_steps']
        out['events_held'] = self._receiver.active_events
        out['sessions_held'] = self._receiver.held_sessions
        out.update(self._federation.counters())
        return out

    # --- protocol watch (identity conflicts, clocks, high-water mark, pseudonyms) -------
    def _origin(self) -> int:
        return secrets.randbits(64) if self._pseudonymous else self._sequences.origin

    def _rotate_pseudonym(self) -> None:
        """A new pseudonym, origin and session: nothing on the air links it to the old."""
        self._receiver.own_ids.pop(self._station_id, None)
        self._station_id = pseudonym()
        self._sender = Sender(self._signer, origin=self._origin())
        self._receiver.own_sessions.add(self._sender.session)
        self._receiver.own_ids[self._station_id] = (self._sender.origin, self._sender.session)
        self.get_logger().info(f'new pseudonym {self._station_id}')
        self._send_heartbeat()

    def _load_high_water(self) -> dict:
        try:
            text = (Path(self.settings.state_dir) / HIGH_WATER_FILE).read_text('utf-8')
            return Receiver.high_water_from_state(json.loads(text))
        except (OSError, ValueError, AttributeError):
            return {}

    def _watch_protocol(self) -> None:
        """Once a second: log id conflicts (ERROR) and clock steps, save the high-water
        marks now and then."""
        rx = self._receiver
        for conflict in rx.take_conflicts():
            self._id_conflict_at = time.monotonic()
            self.get_logger().error(conflict.describe())
        if rx.counters['clock_steps'] != self._clock_steps_seen:
            self._clock_steps_seen = rx.counters['clock_steps']
            self.get_logger().warning(f'the wall clock stepped by {rx.clock_step_s:+.3f} s; '
                                      'replay and event state kept (monotonic)')
        if rx.high_water_changed and \
                time.monotonic() - self._high_water_saved >= HIGH_WATER_SAVE_S:
            rx.high_water_changed = False
            self._high_water_saved = time.monotonic()
            marks = rx.high_water_state()
            try:
                tmp = Path(self.settings.state_dir) / (HIGH_WATER_FILE + '.tmp')
                tmp.write_text(json.dumps(marks), encoding='utf-8')
                os.replace(tmp, tmp.with_name(HIGH_WATER_FILE))
            except OSError as exc:
                self.get_logger().warning(f'cannot save the high-water marks: {exc}',
                                          throttle_duration_sec=60.0)

    def _protocol_health(self):
        """(level, message) for id conflicts and peer clock offsets, or None."""
        if time.monotonic() - self._id_conflict_at < ID_CONFLICT_ERROR_S:
            return ERROR, 'two stations use one station id (see the log); give each its own'
        rx = self._receiver
        if rx.active_events >= 0.9 * rx.max_events:
            return WARN, (f'event table {rx.active_events} of {rx.max_events}: new events are '
                          'dropped (state_full) while it is full; held ones are never evicted')
        offsets = {k: v for k, (v, _) in rx.clock_offsets.copy().items()}
        limit = self.settings.max_clock_skew_s / 2
        worst = max(offsets.items(), key=lambda kv: abs(kv[1]), default=None)
        if worst is not None and abs(worst[1]) > limit:
            return WARN, (f'peer {worst[0]!r} clock offset {worst[1]:+.1f} s (over '
                          f'{limit:g} s; the skew window drops it at '
                          f'{self.settings.max_clock_skew_s:g} s)')
        return None

    def _pressure(self, c) -> str | None:
        """A warning while the receive buffer overflowed, the peer table refused new source
        ids or foreign changes were undone within the last AUTH_WARN_S (else None)."""
        now = time.monotonic()
        seen = (c['kernel_drops'], c['peers_refused'], c['reasserted'])
        for i, (value, before) in enumerate(zip(seen, self._pressure_seen, strict=True)):
            if value != before:
                self._pressure_at[i] = now
        self._pressure_seen = seen
        messages = ('receive buffer overflowing: datagrams dropped by the kernel (flood?)',
                    f'peer table full ({c["peers"]}): heartbeats of new source ids refused',
                    'changes to live events on v2x/alert from someone else were undone')
        recent = [m for m, at in zip(messages, self._pressure_at, strict=True)
                  if now - at < AUTH_WARN_S]
        return '; '.join(recent) if recent else None

    def _health(self):
        c = self.counters()
        rx = self._rx_worker
        if rx is not None:
            c.update(rx.status())
            if rx.failed_within():
                return ERROR, f'receive {rx.describe()}', c
        protocol = self._protocol_health()
        if protocol is not None and protocol[0] == ERROR:
            return protocol[0], protocol[1], c
        if c['send_errors'] or c['csv_errors'] or c['internal_errors']:
            return WARN, 'send, CSV or internal errors', c
        warnings = []
        if time.monotonic() - self._last_auth_drop < AUTH_WARN_S:
            warnings.append('rejecting datagrams that fail authentication (key mismatch?)')
        pressure = self._pressure(c)
        if pressure is not None:
            warnings.append(pressure)
        if warnings:
            return WARN, '; '.join(warnings), c
        if protocol is not None:
            return protocol[0], protocol[1], c
        return OK, f'{self.settings.role} {self._station_id}', c

    def destroy_node(self):
        """Stop the receive thread and close the sockets."""
        if self._saver is not None:
            self._saver.stopping.set()  # before _stop: its loop's end is then no failure
        if self._rx_worker is not None:
            self._rx_worker.stopping.set()  # before the sockets close: no failure then
        if self._stop is not None:
            self._stop.set()
        if self._federation is not None:
            self._federation.close()
        for sock in (self._rx, self._tx):
            if sock is not None:
                sock.close()
        if self._rx_worker is not None:
            self._rx_worker.stop(timeout=2.0)
        if self._saver is not None:
            self._saver.stop(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> int:
    """Run the gateway until interrupted; a bad parameter exits 2 naming it."""
    sys.setswitchinterval(GIL_SWITCH_S)
    return run_node(NODE_NAME, frozen_after(AlertGateway), args)


if __name__ == '__main__':
    sys.exit(main())
