"""alert_gateway: the node between ROS topics and the signed UDP multicast link.

Both roles receive (alerts -> v2x/alert, CSV, v2x/markers; heartbeats -> v2x/heartbeat,
v2x/peers) and send heartbeats when they hold a signing key. role 'rsu' also sends:
v2x/alert_out -> identity and defaults -> sign -> multicast now and every
repeat_interval_s until expiry -> the new alert on v2x/alert_sent.

This module is the thin shell: parameters, keys, sockets, timers, publishers and files.
Every table and decision (receiving, re-asserting our versions of events on v2x/alert,
repeats, pseudonyms, health) is in gateway_core.GatewayCore, which the shell feeds and
whose actions it carries out; who this station is lives in one identity.Identity.

Threads: the executor (timers, subscriptions), the receive worker (multicast), paho's
thread when federated (the broker path) and the state writer (files, fsync, off the
executor). Locks: ``_lock`` around every call into the core (short; the core is not
thread-safe), ``_ingest`` around a whole batch of one receive path so that the radio and
the broker paths publish in the order the core decided.
"""

from dataclasses import dataclass
import os
from pathlib import Path
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from v2x_bridge import federation, gateway_core, markers, net
from v2x_bridge.csvlog import RotatingCsv, row
from v2x_bridge.federation import GatewayFederation
from v2x_bridge.gateway_core import (
    AlertOutDropped,
    CoreSettings,
    Delivered,
    GatewayCore,
    HeardHeartbeat,
    Log,
    MarkersNow,
    PeersNow,
    Publish,
    SaveHighWater,
    SaveOutbox,
    Sent,
    Transmit,
)
from v2x_bridge.identity import Identity
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
    one_of,
)
from v2x_common.paths import make_dirs
from v2x_common.take import queued
from v2x_common.worker import Worker
import v2x_conversion as conversions
from v2x_federation.config import BrokerConfig
from v2x_msgs.msg import Alert, Heartbeat, PeerArray
from v2x_protocol.io import keys
from v2x_protocol.io.state import HighWaterFile, OutboxFile, SequenceStore
from v2x_protocol.wire import AlertData

NODE_NAME = 'alert_gateway'
ROLES = {'rsu': Heartbeat.ROLE_RSU, 'vehicle': Heartbeat.ROLE_VEHICLE}
LEVELS = {gateway_core.OK: OK, gateway_core.WARN: WARN, gateway_core.ERROR: ERROR}
_CORE_LEVELS = {v: k for k, v in LEVELS.items()}
GIL_SWITCH_S = 0.0005    # let the receive thread in quickly (default 5 ms)
SEEN_BATCH = 200  # messages of v2x/alert checked per wake-up of that subscription
RX_WAIT_S = 0.2          # the receive thread checks for shutdown this often
RX_BATCH = 256           # datagrams read per wake-up (one core call)


def _alert_msg(a: AlertData, path: int, authenticated: bool) -> Alert:
    return conversions.alert_to_msg(a, path=path, authenticated=authenticated)


@dataclass(frozen=True)
class Settings:
    """Every parameter, read once at start-up."""

    role: str
    station_id: str  # as configured ('' = a default): the running one is identity's
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
    heartbeat_key_file: str
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
    pseudonym_period_s: float
    camera_status: str
    camera_stale_s: float
    broker: BrokerConfig | None  # broker_*: None when broker_url is '' (federation off)


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
    Param('heartbeat_key_file', '', "the fleet's heartbeat key (v2x_keygen --heartbeat): a "
          'vehicle signs its heartbeats with it, every gateway accepts it for vehicle '
          'heartbeats only, never for alerts'),
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
    Param('camera_status', 'hazard_detector', "rsu: the detector's /diagnostics status "
          "name (relative: in this gateway's namespace) whose camera health goes into the "
          "heartbeat; '' = none watched"),
    Param('camera_stale_s', 15.0, 'rsu: that status unheard this long (a dead or disabled '
          "detector) reads as 'rsu degraded: camera detector_down'", in_range(1.0, 3600.0)),
    Param('pseudonym_period_s', 0.0, "vehicle with station_id '': draw a new pseudonym this "
          'often (0 = once per start)', in_range(0.0, 86400.0)),
) + federation.PARAMETERS  # broker_* (issue 15): read here with the rest


def read_settings(node: Node) -> Settings:
    """Declare every parameter (the broker_* ones too), read them once, validate; raises
    ParameterError."""
    values = declare_parameters(node, PARAMETERS)
    if values['auth_mode'] == 'none' and not values['insecure']:
        raise ParameterError('auth_mode', "'none' needs 'insecure: true'")
    if values['insecure'] and values['auth_mode'] != 'none':
        raise ParameterError('insecure', f"true together with auth_mode {values['auth_mode']}: "
                             'a gateway either signs and checks, or runs insecure '
                             '(auth_mode none), not both')
    try:
        net.check_group(values['group'], values['port'])
    except ValueError as exc:
        raise ParameterError('group', str(exc)) from None
    values['accept_key_files'] = tuple(
        p.strip() for p in values['accept_key_files'].split(',') if p.strip())
    values['state_dir'] = os.path.expanduser(values['state_dir'])
    values['csv_log'] = os.path.expanduser(values['csv_log'])
    values['broker'] = federation.read_config(values)  # takes the broker_* values out
    return Settings(**values)


def load_keys(s: Settings):
    """The station's keys (v2x_protocol.io.keys.load_station_keys: signer or None, the
    fleet heartbeat signer or None, keyring); ParameterError naming the parameter."""
    try:
        return keys.load_station_keys(
            s.role, s.auth_mode, key_file=s.key_file, accept_key_files=s.accept_key_files,
            trust_store=s.trust_store, heartbeat_key_file=s.heartbeat_key_file,
            insecure=s.insecure)
    except keys.KeyConfigError as exc:
        text = str(exc)
        if text.startswith('no HMAC key'):  # keys' wording names the CLIs' --hmac-key
            text = (f'no HMAC key: give key_file:=FILE (launch) or -p key_file:=FILE, '
                    f'or set {keys.ENV_KEY}; or -p insecure:=true on purpose (testing only)')
        raise ParameterError(exc.param, text) from None


class AlertGateway(Node):
    """The gateway node; parameters decide its role."""

    def __init__(self, **kwargs):
        # What destroy_node uses exists before anything can fail (a bad parameter).
        self._rx = self._tx = self._rx_worker = self._saver = self._federation = None
        super().__init__(NODE_NAME, **kwargs)
        self.settings = s = read_settings(self)
        loaded = load_keys(s)
        signer, keyring = loaded.signer, loaded.keyring
        can_send = signer is not None or loaded.heartbeat_signer is not None or s.insecure
        if s.role == 'rsu' and signer is None and not s.insecure:
            raise ParameterError('key_file', 'an RSU needs a signing key (or insecure: true)')
        dirs = {'state_dir': s.state_dir}
        if s.csv_log:
            dirs['csv_log'] = os.path.dirname(os.path.abspath(s.csv_log))
        for line in make_dirs(**dirs):  # said when made; refused when nobody's or unwritable
            self.get_logger().info(line)
        try:  # the station's origin and sequences (shared with the CLI tools)
            self._sequences = SequenceStore(Path(s.state_dir))
        except (OSError, ValueError) as exc:
            raise ParameterError('state_dir', str(exc)) from None
        self.identity = Identity(s.role, s.station_id, signer=signer, can_send=can_send,
                                 heartbeat_signer=loaded.heartbeat_signer,
                                 origin=self._sequences.origin)
        self._high_water = HighWaterFile(s.state_dir)
        self._outbox_file = OutboxFile(s.state_dir)
        self._lock = threading.Lock()    # every call into the core
        self._ingest = threading.Lock()  # one receive path's batch at a time
        self.core = GatewayCore(
            CoreSettings(role=s.role, heartbeat_role=ROLES[s.role],
                         repeat_interval_s=s.repeat_interval_s,
                         heartbeat_period_s=s.heartbeat_period_s, stale_after=s.stale_after,
                         max_clock_skew_s=s.max_clock_skew_s,
                         default_validity_s=s.default_validity_s,
                         federated=s.broker is not None,
                         camera_stale_s=s.camera_stale_s if s.camera_status else 0.0),
            self.identity, keyring, next_sequence=self._sequences.next,
            high_water=self._high_water.load())
        self._act = {Delivered: self._on_delivered, Publish: self._on_publish,
                     HeardHeartbeat: self._on_heartbeat, Transmit: self._on_transmit,
                     Sent: self._on_sent, AlertOutDropped: self._on_alert_out_dropped,
                     PeersNow: self._on_peers, MarkersNow: self._on_markers,
                     SaveOutbox: self._on_save, SaveHighWater: self._on_save, Log: self._on_log}
        try:
            self._csv = (RotatingCsv(s.csv_log, s.csv_max_bytes, s.csv_keep) if s.csv_log
                         else None)
        except OSError as exc:
            raise ParameterError('csv_log', str(exc)) from None
        self._open_link(s)
        self._pub_alert = self.create_publisher(Alert, 'v2x/alert', qos.ALERT)
        self._seen_sub = self.create_subscription(Alert, 'v2x/alert', self._on_alert_seen,
                                                  qos.ALERT_READER)
        self._pub_hb = self.create_publisher(Heartbeat, 'v2x/heartbeat', qos.HEARTBEAT)
        self._pub_peers = self.create_publisher(PeerArray, 'v2x/peers', qos.PEERS)
        self._pub_markers = self.create_publisher(MarkerArray, 'v2x/markers', qos.MARKERS)
        if s.role == 'rsu':
            self._do(self.core.restore(self._outbox_file.load(time.time_ns())))
            # transient-local, its last alerts kept: a clipper that starts or restarts late
            # still gets every alert sent (docs/ARCHITECTURE.md)
            self._pub_sent = self.create_publisher(Alert, 'v2x/alert_sent',
                                                   qos.ALERT_SENT_WRITER)
            self.create_subscription(Alert, 'v2x/alert_out', self._on_alert_out,
                                     qos.ALERT_OUT_READER)
            # fine ticks spread the repeats instead of sending them in bursts
            self.create_timer(min(s.repeat_interval_s / 20.0, 0.05), self._on_repeat_timer)
        if can_send:
            self.create_timer(s.heartbeat_period_s, self._send_heartbeat)
            if self.identity.pseudonymous and s.pseudonym_period_s > 0:
                self.create_timer(s.pseudonym_period_s, self._rotate_pseudonym)
        self.create_timer(1.0, self._on_second)
        if self.core.camera is not None:
            ns, name = self.get_namespace().strip('/'), s.camera_status
            self._camera_name = name.lstrip('/') if name.startswith('/') or not ns \
                else f'{ns}/{name}'
            self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                     qos.DIAGNOSTICS)
        self._diag = Diagnostics(self, status_fn=self._health)
        try:  # the broker path beside the radio (issue 15), when broker_url is given
            self._federation = GatewayFederation(
                self, s.broker, self.identity, site=(s.origin_lat, s.origin_lon),
                heartbeat_period_s=s.heartbeat_period_s, stale_after=s.stale_after,
                deliver=lambda data: self.handle_datagram(data, Alert.PATH_BROKER))
        except ParameterError:
            self._rx.close()
            self._tx.close()
            raise
        # The state writer: files (fsync) are written off the executor, which in
        # vehicle_stack also filters cmd_vel. The latest content of each file waits here.
        self._to_save: dict[type, SaveOutbox | SaveHighWater] = {}
        self._save_wanted = threading.Event()
        # Supervised (issue 11): an error escaping a loop is logged at ERROR, counted,
        # shown in diagnostics (ERROR for worker.FAILED_ERROR_S) and the loop restarted with
        # backoff. Restarted rather than exiting the process: composed with speed_policy
        # (vehicle_stack) an exit would take the cmd_vel filter down too, and the core's
        # replay/duplicate state and the outbox survive an in-process restart.
        self._saver = Worker('v2x_save', self._save_loop, logger=self.get_logger(),
                             restart=True, wake=self._save_wanted.set)
        self._rx_worker = Worker('v2x_rx', self._receive_loop, logger=self.get_logger(),
                                 restart=True)
        for worker in (self._saver, self._rx_worker):
            worker.start()  # after the assignment: the loop reads its stopping event
        if can_send:
            self._send_heartbeat()
        self.get_logger().info(
            f'{s.role} {self.identity.station_id} on {s.group}:{s.port} '
            f'iface={s.iface or "default"} auth={s.auth_mode}'
            + (' INSECURE' if s.insecure else ''))

    def _open_link(self, s: Settings) -> None:
        """The multicast sockets and the batch reader; ParameterError names what failed."""
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

    # --- actions of the core ------------------------------------------------------------
    def _do(self, actions) -> None:
        """Carry out the core's actions, in order (outside the core lock)."""
        for action in actions:
            self._act[type(action)](action)

    def _on_delivered(self, d: Delivered) -> None:
        self._pub_alert.publish(_alert_msg(d.alert, d.path, d.authenticated))
        if self._csv is not None:
            try:
                self._csv.append(row(d.alert, d.change, d.received_ns / 1e9))
            except OSError as exc:
                with self._lock:
                    self.core.count('csv_errors')
                self.get_logger().warning(f'CSV log: {exc}', throttle_duration_sec=10.0)

    def _on_publish(self, p: Publish) -> None:
        self._pub_alert.publish(_alert_msg(p.alert, p.path, p.authenticated))

    def _on_heartbeat(self, h: HeardHeartbeat) -> None:
        self._pub_hb.publish(conversions.heartbeat_to_msg(h.heartbeat, h.send_time_ns))

    def _on_transmit(self, t: Transmit) -> None:
        try:
            self._tx.send(t.datagram)
        except OSError as exc:  # link down, firewall: count, keep going
            with self._lock:
                self.core.count('send_errors')
            self.get_logger().warning(f'send failed: {exc.strerror}', throttle_duration_sec=5.0)
        else:
            with self._lock:
                self.core.count('sent')
        self._federation.sent(t.payload, t.datagram)  # also to the broker (RSU, federated)

    def _on_sent(self, s: Sent) -> None:
        # produced (and signed) here: local and trusted, as Alert.msg defines them
        sent = _alert_msg(s.alert, Alert.PATH_LOCAL, True)
        sent.origin = self.identity.origin  # with source_id and sequence: the event (clips)
        self._pub_sent.publish(sent)

    def _on_alert_out_dropped(self, d: AlertOutDropped) -> None:
        text = f'dropped alert from v2x/alert_out ({d.reason}): {d.text}'
        if d.error:
            self.get_logger().error(text, throttle_duration_sec=5.0)
        else:
            self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _on_peers(self, p: PeersNow) -> None:
        self._pub_peers.publish(conversions.peers_to_msg(p.peers, p.paths))

    def _on_markers(self, m: MarkersNow) -> None:
        s = self.settings
        self._pub_markers.publish(markers.markers_from_alerts(
            m.alerts, (s.origin_lat, s.origin_lon), self.get_clock().now().to_msg()))

    def _on_save(self, save: SaveOutbox | SaveHighWater) -> None:
        with self._lock:
            self._to_save[type(save)] = save  # a newer one replaces one not yet written
        self._save_wanted.set()

    def _on_log(self, line: Log) -> None:
        # one call site per severity: rclpy refuses a severity change at one call site
        if line.level == 'info':
            self.get_logger().info(line.text)
        elif line.level == 'warn':
            self.get_logger().warning(line.text)
        else:
            self.get_logger().error(line.text)

    # --- sending ----------------------------------------------------------------------
    def _on_alert_out(self, msg: Alert) -> None:
        """Take in, sign and send one alert; bad input is dropped and counted, never raised
        (an exception escaping a callback would stop the gateway)."""
        try:
            alert = conversions.alert_from_msg(msg, strict=True, provenance=False)
        except Exception as exc:  # noqa: BLE001 -- one bad alert must not stop the node
            with self._lock:
                actions = self.core.refuse_alert_out(exc)
        else:
            with self._lock:
                actions = self.core.alert_out(alert)
        self._do(actions)

    def _on_repeat_timer(self) -> None:
        with self._lock:
            actions = self.core.due()
        self._do(actions)

    def _send_heartbeat(self) -> None:
        level, message, _ = self._health()
        with self._lock:
            actions = self.core.heartbeat(_CORE_LEVELS[level], message)
        self._do(actions)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """The detector's status among /diagnostics: its camera health for the heartbeat
        (sent at once when the camera's state changed)."""
        for status in msg.status:
            if status.name != self._camera_name:
                continue
            level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
            camera = next((kv.value for kv in status.values if kv.key == 'camera'), '')
            with self._lock:
                before = self.core.camera_fault()
                self.core.camera_heard(_CORE_LEVELS.get(level, gateway_core.ERROR), camera)
                changed = self.core.camera_fault() != before
            if changed:  # peers learn of it now, not at the next period
                self._send_heartbeat()

    def _rotate_pseudonym(self) -> None:
        """A new pseudonym, origin and session: nothing on the air links it to the old."""
        with self._lock:
            actions = self.core.rotate_pseudonym()
        self._do(actions)
        self._send_heartbeat()

    # --- receiving --------------------------------------------------------------------
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
        """Datagrams that came by path (Alert.PATH_RADIO: multicast, the receive thread;
        PATH_BROKER: federation, paho's thread) through the core, carrying out each action
        as soon as the core yields it (never raises). A rejected datagram costs the core
        one counter increment; the drop summary is logged by the 1 Hz tick."""
        with self._ingest:
            actions = self.core.ingest(batch, path)
            while True:
                with self._lock:
                    action = next(actions, None)
                if action is None:
                    return
                try:
                    self._act[type(action)](action)
                except Exception as exc:  # noqa: BLE001 -- the receive thread must not die
                    with self._lock:
                        self.core.internal_error(
                            f'receive path failed: {type(exc).__name__}: {exc}')

    def _on_alert_seen(self, msg: Alert) -> None:
        """Messages on v2x/alert (mostly our own): this one and those queued behind it (a
        burst we delivered comes back as a burst); the core answers a foreign change to
        one of our events with our version."""
        self._check_seen(msg)
        for more in queued(self._seen_sub, SEEN_BATCH - 1):
            self._check_seen(more)

    def _check_seen(self, msg: Alert) -> None:
        seen = conversions.alert_from_msg(msg, provenance=False)
        with self._lock:
            again = self.core.seen(seen)
        if again is not None:
            self._on_publish(again)

    # --- periodic -----------------------------------------------------------------------
    def _on_second(self) -> None:
        with self._lock:
            actions = self.core.tick(self._reader.kernel_drops)
        self._do(actions)

    def _save_loop(self) -> None:
        """State writer: write the latest content of each file whenever some is handed
        over (the outbox of an RSU: JSON of many alerts; the high-water marks)."""
        stopping = self._saver.stopping
        while not stopping.is_set():
            if not self._save_wanted.wait(timeout=0.5):
                continue
            self._save_wanted.clear()
            with self._lock:
                todo, self._to_save = self._to_save, {}
            for save in todo.values():
                what = 'outbox' if isinstance(save, SaveOutbox) else 'high-water marks'
                try:
                    if isinstance(save, SaveOutbox):
                        self._outbox_file.save(save.alerts)
                    else:
                        self._high_water.save(save.marks)
                except OSError as exc:
                    self.get_logger().warning(f'cannot save the {what}: {exc}',
                                              throttle_duration_sec=60.0)

    def counters(self) -> dict[str, int]:
        """A copy of the counters (dropped ones as dropped_<reason>)."""
        with self._lock:
            out = self.core.counters()
        out['kernel_drops'] = self._reader.kernel_drops
        out['rcvbuf_bytes'] = self._rcvbuf
        out.update(self._federation.counters())
        return out

    def _health(self):
        c = self.counters()
        rx = self._rx_worker
        if rx is not None:
            c.update(rx.status())
            if rx.failed_within():
                return ERROR, f'receive {rx.describe()}', c
        with self._lock:
            if self.core.camera is not None:  # what the heartbeat says of the camera
                c['camera'] = self.core.camera_fault() or 'ok'
            level, message = self.core.health(c)
        return LEVELS[level], message, c

    def destroy_node(self):
        """Stop the workers and close the sockets."""
        for worker in (self._saver, self._rx_worker):
            if worker is not None:  # before the sockets close: its end is then no failure
                worker.stopping.set()
        if self._federation is not None:
            self._federation.close()
        for sock in (self._rx, self._tx):
            if sock is not None:
                sock.close()
        for worker in (self._rx_worker, self._saver):
            if worker is not None:
                worker.stop(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> int:
    """Run the gateway until interrupted; a bad parameter exits 2 naming it."""
    sys.setswitchinterval(GIL_SWITCH_S)
    return run_node(NODE_NAME, frozen_after(AlertGateway), args)


if __name__ == '__main__':
    sys.exit(main())
