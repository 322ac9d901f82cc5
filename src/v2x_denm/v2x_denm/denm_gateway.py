"""denm_gateway: the DENM face of a station (off unless launched).

Sends: every alert our RSU gateway sent (v2x/alert_sent) as a DENM, repeated every
repeat_interval_s until it expires (a cancellation too), on the enabled link forms:
  (a) UDP datagrams of BTP-B + UPER DENM to udp_send_to (etsi_its_conversion's UDP form),
  (b) GeoNetworking GeoBroadcast frames (ethertype 0x8947) on the raw interface gn_iface.
Receives (only where the operator accepts unauthenticated DENMs: udp_accept, gn_accept):
DENMs become Alerts on v2x/alert with path PATH_DENM, authenticated false, source_id
'denm:<originatingStationID>' (their own event-id space), after the receive rules of
v2x_denm.receiver (repetition, expiry, cancellation; actionID is the identity).
docs/denm.md describes the mapping, the wiring and the security caveat.
"""

from dataclasses import dataclass
import math
import selectors
import socket
import sys
import threading
import time

from rclpy.node import Node

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.node_main import run_node
from v2x_common.params import Param, ParameterError, check, declare_parameters, in_range
from v2x_common.worker import Worker
from v2x_denm import codec, conversions, frames, link, net
from v2x_denm.receiver import DenmDelivered, DenmReceiver, DenmRejected, DenmRepeated
from v2x_msgs.msg import Alert
from v2x_protocol.io.station import default_station_id
from v2x_protocol.sender import Outbox

NODE_NAME = 'denm_gateway'
SUMMARY_PERIOD_S = 10.0


@dataclass(frozen=True)
class Settings:
    """Every parameter, read once at start-up."""

    its_station_id: int
    source_id: str
    station_type: int
    udp_send_to: str
    udp_listen: str
    udp_accept: bool
    gn_iface: str
    gn_send: bool
    gn_accept: bool
    repeat_interval_s: float
    max_clock_skew_s: float
    gn_default_radius_m: float
    gn_lifetime_s: float
    gn_hop_limit: int
    station_lat: float
    station_lon: float


def _nan_or(low: float, high: float):
    def problem(v):
        if math.isnan(v) or low <= v <= high:
            return None
        return f'must be NaN (unset) or within [{low:g}, {high:g}], got {v!r}'
    return check(f'NaN or within [{low:g}, {high:g}]', problem)


def _hostport(v: str):
    if not v:
        return None
    try:
        net.parse_hostport(v, 'address')
    except ValueError:
        return f"{v!r} is not host:port ('' = off)"
    return None


HOSTPORT = check("host:port or ''", _hostport)

PARAMETERS = (
    Param('its_station_id', 0, 'numeric ITS StationID of this station (0 = derived from '
          'source_id: first 4 bytes of its SHA-256)', in_range(0, codec.MAX_STATION_ID),
          renamed_from='station_id'),
    Param('source_id', '', "alerts with this source_id (or '') are this station's own "
          "events: the alert_gateway's station_id ('' = rsu_<hostname>, as the gateway)"),
    Param('station_type', codec.STATION_TYPE_RSU, 'ITS StationType (15 = roadSideUnit)',
          in_range(0, 255)),
    Param('udp_send_to', '', "host:port receiving our BTP-B + DENM datagrams ('' = off)",
          HOSTPORT),
    Param('udp_listen', '', "host:port to receive BTP-B + DENM datagrams on ('' = off)",
          HOSTPORT),
    Param('udp_accept', False, 'accept unauthenticated DENMs arriving on udp_listen'),
    Param('gn_iface', '', "raw Ethernet/ITS-G5 interface for GeoNetworking ('' = off; "
          'needs CAP_NET_RAW)'),
    Param('gn_send', True, 'send GeoNetworking frames on gn_iface'),
    Param('gn_accept', False, 'accept unauthenticated DENMs arriving on gn_iface'),
    Param('repeat_interval_s', 1.0, 'DENM repetition period until the alert expires',
          in_range(0.01, 3600.0)),
    Param('max_clock_skew_s', 30.0, 'a referenceTime further ahead of our clock is refused',
          in_range(0.001, 86400.0)),
    Param('gn_default_radius_m', 1000.0, 'GeoBroadcast circle radius when an alert gives '
          'no distance', in_range(1.0, 65535.0)),
    Param('gn_lifetime_s', 60.0, 'GN packet lifetime', in_range(0.05, 6300.0)),
    Param('gn_hop_limit', 10, 'GN maximum hop limit', in_range(1, 255)),
    Param('station_lat', math.nan, "this station's latitude in GN headers (NaN = the "
          "event's)", _nan_or(-90.0, 90.0)),
    Param('station_lon', math.nan, "this station's longitude in GN headers (NaN = the "
          "event's)", _nan_or(-180.0, 180.0)),
)


def read_settings(node: Node) -> Settings:
    """Declare every parameter, read them once, validate; raises ParameterError."""
    s = Settings(**declare_parameters(node, PARAMETERS))
    if s.udp_accept and not s.udp_listen:
        raise ParameterError('udp_accept', 'needs udp_listen host:port')
    if s.udp_listen and not s.udp_accept:
        raise ParameterError('udp_accept', 'udp_listen is set but DENMs are '
                             'unauthenticated; set udp_accept: true to accept them')
    if s.gn_accept and not s.gn_iface:
        raise ParameterError('gn_accept', 'needs gn_iface')
    if not (s.udp_send_to or s.udp_listen or s.gn_iface):
        raise ParameterError('udp_send_to', 'no DENM face enabled: set udp_send_to, '
                             'udp_listen or gn_iface')
    return s


class DenmGateway(Node):
    """Sends our alerts as DENMs; turns accepted DENMs into unauthenticated Alerts."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.settings = s = read_settings(self)
        source_id = s.source_id or default_station_id('rsu')
        self.station = codec.Station(s.its_station_id or codec.station_id_of(source_id),
                                     s.station_type, source_id)
        self._gn_settings = frames.GnSettings(s.gn_default_radius_m, s.gn_lifetime_s,
                                              s.gn_hop_limit, s.station_lat, s.station_lon)
        self._lock = threading.Lock()
        self._counts = {'sent_udp': 0, 'sent_gn': 0, 'send_errors': 0, 'delivered': 0,
                        'repeats': 0, 'unencodable': 0, 'internal_errors': 0}
        self._dropped: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        self._outbox = Outbox(s.repeat_interval_s)
        self._encoded: dict[tuple[str, int], bytes] = {}
        self._gn_sequence = 0
        self._receiver = DenmReceiver(self.station.station_id, s.max_clock_skew_s)
        self._sockets = []
        self._udp_tx = self._udp_rx = self._gn = None
        self._gn_mac = b''
        try:
            self._open_sockets(s)
        except BaseException:
            self._close_sockets()
            raise
        self._pub_alert = self.create_publisher(Alert, 'v2x/alert', qos.ALERT)
        self.create_subscription(Alert, 'v2x/alert_sent', self._on_alert_sent, qos.ALERT_SENT)
        self.create_timer(min(s.repeat_interval_s / 20.0, 0.05), self._on_repeat_timer)
        self.create_timer(SUMMARY_PERIOD_S, self._log_summary)
        self._diag = Diagnostics(self, status_fn=self._health)
        # Supervised (issue 11): an error escaping the loop is logged at ERROR, counted,
        # shown in diagnostics (ERROR for worker.FAILED_ERROR_S) and the loop restarted with
        # backoff, keeping the receiver's duplicate state and the outbox's repeats going.
        self._rx_worker = None
        if self._udp_rx is not None or (self._gn is not None and s.gn_accept):
            self._rx_worker = Worker('denm_rx', self._receive_loop,
                                     logger=self.get_logger(), restart=True)
            self._rx_worker.start()  # after the assignment: the loop reads stopping
        self.get_logger().info(
            f'station {self.station.station_id} (type {s.station_type}); send: '
            f"udp={s.udp_send_to or 'off'} gn={(s.gn_iface if s.gn_send else '') or 'off'}; "
            f"accept: udp={s.udp_listen if s.udp_accept else 'off'} "
            f"gn={s.gn_iface if s.gn_accept else 'off'} (unauthenticated)")

    # --- set-up ---------------------------------------------------------------------
    def _open_sockets(self, s: Settings) -> None:
        try:
            if s.udp_send_to:
                self._udp_dest = net.parse_hostport(s.udp_send_to, 'udp_send_to')
                self._udp_tx = net.open_udp(None)
                self._sockets.append(self._udp_tx)
        except OSError as exc:
            raise ParameterError('udp_send_to', str(exc)) from None
        try:
            if s.udp_listen:
                self._udp_rx = net.open_udp(net.parse_hostport(s.udp_listen, 'udp_listen'))
                self._sockets.append(self._udp_rx)
        except OSError as exc:
            raise ParameterError('udp_listen', str(exc)) from None
        try:
            if s.gn_iface:
                self._gn, self._gn_mac = net.open_gn(s.gn_iface)
                self._sockets.append(self._gn)
                if not s.gn_accept:  # never read: let the kernel keep (almost) nothing
                    self._gn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        except OSError as exc:
            raise ParameterError('gn_iface', f'{exc} (needs CAP_NET_RAW)') from None

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def destroy_node(self):
        """Stop the receive thread and close the sockets."""
        rx = getattr(self, '_rx_worker', None)
        if rx is not None:
            rx.stop(timeout=2.0)  # before the sockets close: no failure then
        self._close_sockets()
        return super().destroy_node()

    # --- counters -------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _drop(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def counters(self) -> dict:
        """Sent, delivered, repeats and drops by reason (dropped_<reason>)."""
        with self._lock:
            out = dict(self._counts)
            out.update({f'dropped_{k}': v for k, v in self._dropped.items()})
            out['live_sent'] = len(self._outbox)
            out['events_held'] = self._receiver.active_events
        return out

    def _health(self):
        c = self.counters()
        rx = self._rx_worker
        if rx is not None:
            c.update(rx.status())
            if rx.failed_within():
                return ERROR, f'receive {rx.describe()}', c
        if c['send_errors'] or c['internal_errors']:
            return WARN, 'send or internal errors', c
        return OK, f'station {self.station.station_id}', c

    def _log_summary(self) -> None:
        with self._lock:
            new = {k: v - self._reported.get(k, 0) for k, v in self._dropped.items()
                   if v != self._reported.get(k, 0)}
            self._reported = dict(self._dropped)
        if new:
            text = ', '.join(f'{k} {v}' for k, v in sorted(new.items()))
            self.get_logger().warning(f'dropped DENM input in the last '
                                      f'{SUMMARY_PERIOD_S:g} s: {text}')

    # --- sending --------------------------------------------------------------------
    def _on_alert_sent(self, msg: Alert) -> None:
        """Encode, send and schedule the repeats of one alert our gateway sent; an alert a
        DENM cannot carry is dropped, counted and logged (never raised)."""
        now = time.time_ns()
        try:
            alert = conversions.sent_alert(msg)
            btp = frames.denm_btp(alert, self.station)
        except codec.InvalidAlert as exc:
            self._count('unencodable')
            self.get_logger().warning(f'alert {msg.source_id}#{msg.sequence} not sent as '
                                      f'DENM: {exc}', throttle_duration_sec=5.0)
            return
        except Exception as exc:  # noqa: BLE001 -- one bad alert must not stop the node
            self._count('internal_errors')
            self.get_logger().error(f'alert {msg.source_id}#{msg.sequence} not sent as '
                                    f'DENM: {type(exc).__name__}: {exc}',
                                    throttle_duration_sec=5.0)
            return
        if alert.expires_ns <= now:
            self._drop('sent_expired')
            return
        self._outbox.put(alert, now)
        self._encoded[alert.key] = btp
        self._transmit(btp, alert, now)

    def _on_repeat_timer(self) -> None:
        now = time.time_ns()
        for alert in self._outbox.due(now):
            self._transmit(self._encoded[alert.key], alert, now)
        if len(self._encoded) > len(self._outbox):
            for key in [k for k in self._encoded if self._outbox.get(k) is None]:
                del self._encoded[key]

    def _transmit(self, btp: bytes, alert, now_ns: int) -> None:
        s = self.settings
        try:
            if self._udp_tx is not None:
                self._udp_tx.sendto(btp, self._udp_dest)
                self._count('sent_udp')
            if self._gn is not None and s.gn_send:
                frame = frames.gn_frame(btp, alert, mac=self._gn_mac,
                                        gn_sequence=self._gn_sequence, now_ns=now_ns,
                                        station=self.station, gn=self._gn_settings)
                self._gn_sequence = (self._gn_sequence + 1) & 0xFFFF
                self._gn.send(frame)
                self._count('sent_gn')
        except OSError as exc:  # link down: count, keep going
            self._count('send_errors')
            self.get_logger().warning(f'DENM send failed: {exc.strerror or exc}',
                                      throttle_duration_sec=5.0)

    # --- receiving ------------------------------------------------------------------
    def _receive_loop(self) -> None:
        sel = selectors.DefaultSelector()
        if self._udp_rx is not None:
            sel.register(self._udp_rx, selectors.EVENT_READ, self._read_udp)
        if self._gn is not None and self.settings.gn_accept:
            sel.register(self._gn, selectors.EVENT_READ, self._read_gn)
        try:
            stopping = self._rx_worker.stopping
            while not stopping.is_set():
                for key, _ in sel.select(timeout=0.2):
                    try:
                        event = key.data()
                        if event is not None:
                            self._handle(event)
                    except OSError:
                        continue  # socket closed at shutdown, or a transient error
                    except Exception as exc:  # noqa: BLE001 -- one packet must not end rx
                        self._count('internal_errors')
                        self.get_logger().error(f'DENM receive error: {type(exc).__name__}: '
                                                f'{exc}', throttle_duration_sec=5.0)
        finally:
            sel.close()

    def _read_udp(self):
        data = self._udp_rx.recv(65535)
        return self._receiver_call(self._receiver.receive_btp, data)

    def _read_gn(self):
        frame = net.recv_gn(self._gn)
        if frame is None:
            return None  # a frame we sent
        try:
            packet = link.parse_ethernet(frame)
        except link.MalformedFrame as exc:
            return DenmRejected(exc.reason, str(exc))
        return self._receiver_call(self._receiver.receive_gn, packet)

    def _receiver_call(self, fn, data: bytes):
        with self._lock:
            return fn(data, time.time_ns())

    def _handle(self, event) -> None:
        if isinstance(event, DenmDelivered):
            try:
                self._pub_alert.publish(conversions.received_msg(event.denm.alert))
            except (AssertionError, ValueError, TypeError, OverflowError) as exc:
                self._count('internal_errors')
                self.get_logger().error(f'could not publish a DENM alert: {exc}',
                                        throttle_duration_sec=5.0)
                return
            self._count('delivered')
        elif isinstance(event, DenmRepeated):
            self._count('repeats')
        elif isinstance(event, DenmRejected):
            self._drop(event.reason)


def main(args=None) -> int:
    """Run the node; a bad parameter exits 2 with a message naming it."""
    return run_node(NODE_NAME, DenmGateway, args)


if __name__ == '__main__':
    sys.exit(main())
