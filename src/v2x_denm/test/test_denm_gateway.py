import math
from pathlib import Path
import socket
import subprocess
import sys
import time

import pytest
from rclpy.parameter import Parameter
import yaml

from v2x_common import qos
from v2x_common.diagnostics import ERROR
from v2x_common.params import ParameterError, defaults
from v2x_denm import codec, link, net
from v2x_denm.denm_gateway import PARAMETERS, DenmGateway
from v2x_msgs.msg import Alert
from v2x_protocol.wire import AlertData
from v2x_testing import RosHarness

FAR = codec.Station(77, source_id='rsu_far')


def _params(**kw):
    return [Parameter(k, value=v) for k, v in kw.items()]


def _udp_sink() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.0.0.1', 0))
    s.settimeout(0.05)
    return s


def _free_udp_port() -> int:
    with _udp_sink() as s:
        return s.getsockname()[1]


def _sent_msg(sequence: int, **kw) -> Alert:
    m = Alert()
    m.source_id, m.sequence = 'rsu_server_01', sequence
    m.kind, m.severity, m.suggest = Alert.KIND_COLLISION, Alert.SEVERITY_HIGH, 1
    now = time.time_ns()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(now, 10**9)
    m.detection_time = m.header.stamp
    m.validity_s, m.latitude, m.longitude, m.distance_m, m.confidence = (
        60.0, 37.5, 127.0, 300.0, 1.0)
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def _far_denm(sequence: int, stamp_ns: int, cancelled: bool = False) -> bytes:
    a = AlertData(source_id='rsu_far', sequence=sequence, kind=1, severity=3, suggest=0,
                  stamp_ns=stamp_ns, detection_time_ns=stamp_ns, validity_s=60.0,
                  cancelled=cancelled, latitude=37.5, longitude=127.0, distance_m=300.0)
    return link.btp_b(codec.encode_alert(a, FAR))


@pytest.fixture(scope='module')
def stack():
    """An RSU-side denm_gateway sending UDP to a sink, a vehicle-side one accepting UDP."""
    ros = RosHarness()
    sink = _udp_sink()
    veh_port = _free_udp_port()
    rsu = ros.add(DenmGateway(context=ros.context, namespace='rsu', parameter_overrides=_params(
        udp_send_to=f'127.0.0.1:{sink.getsockname()[1]}', its_station_id=1234,
        source_id='rsu_server_01', repeat_interval_s=0.2)))
    veh = ros.add(DenmGateway(context=ros.context, namespace='veh', parameter_overrides=_params(
        udp_listen=f'127.0.0.1:{veh_port}', udp_accept=True,
        station_id=99)))  # the deprecated name of its_station_id, still read
    probe = ros.node('probe')
    got = []
    probe.create_subscription(Alert, '/veh/v2x/alert', got.append, qos.ALERT)
    pub = probe.create_publisher(Alert, '/rsu/v2x/alert_sent', qos.ALERT_SENT)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, 20)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield {'ros': ros, 'rsu': rsu, 'veh': veh, 'pub': pub, 'got': got, 'sink': sink,
           'send_to_veh': lambda data: tx.sendto(data, ('127.0.0.1', veh_port))}
    tx.close()
    sink.close()
    ros.close()


def _drain(stack, n: int, timeout: float = 10.0) -> list[bytes]:
    out = []

    def more():
        try:
            out.append(stack['sink'].recv(65535))
        except TimeoutError:
            pass
        return len(out) >= n
    assert stack['ros'].spin_until(more, timeout), f'{len(out)} of {n} datagrams'
    return out


def test_sent_alert_goes_out_as_denm_and_repeats(stack):
    """An alert on v2x/alert_sent goes out as BTP-B + DENM (sequence wrapped to 16 bits)
    and is repeated with the same bytes."""
    stack['pub'].publish(_sent_msg(65536 + 5))
    first, again = _drain(stack, 2)
    assert first == again
    d = codec.decode_alert(link.parse_btp_b(first))
    assert (d.station_id, d.originating_station_id, d.alert.sequence) == (1234, 1234, 5)
    assert d.alert.kind == Alert.KIND_COLLISION and d.cause_code == 2
    assert d.alert.latitude == 37.5


def test_received_denm_published_unauthenticated_once(stack):
    """An accepted DENM is published once as an unauthenticated PATH_DENM alert under
    'denm:<station>'; its repetition is not; its cancellation is."""
    ros, got = stack['ros'], stack['got']
    t0 = time.time_ns() // 10**6 * 10**6
    new = _far_denm(42, t0)
    for _ in range(3):  # the first copy and two repetitions
        stack['send_to_veh'](new)
    assert ros.spin_until(lambda: any(m.sequence == 42 for m in got), 10)
    m = next(m for m in got if m.sequence == 42)
    assert (m.source_id, m.path, m.authenticated) == ('denm:77', Alert.PATH_DENM, False)
    assert (m.kind, m.latitude, m.cancelled) == (Alert.KIND_COLLISION, 37.5, False)
    assert ros.spin_until(lambda: stack['veh'].counters()['repeats'] >= 2, 10)
    stack['send_to_veh'](_far_denm(42, t0 + 10**6, cancelled=True))
    assert ros.spin_until(lambda: any(m.sequence == 42 and m.cancelled for m in got), 10)
    assert [m.cancelled for m in got if m.sequence == 42] == [False, True]


def test_receive_worker_failure_is_error_and_it_restarts(stack):
    """An error escaping the receive loop (SystemExit: no `except Exception` holds it) is
    counted and shown as ERROR in diagnostics; the supervised worker restarts the loop
    and the next DENM is still published."""
    ros, got, veh = stack['ros'], stack['got'], stack['veh']

    def failing(event):
        del veh._handle  # once: the class's _handle again
        raise SystemExit('injected receive fault')
    veh._handle = failing
    t0 = time.time_ns() // 10**6 * 10**6
    stack['send_to_veh'](_far_denm(901, t0))
    assert ros.spin_until(lambda: veh._rx_worker.errors == 1, 20)
    level, message, values = veh._health()
    assert level == ERROR and 'injected receive fault' in message
    assert values['denm_rx_errors'] == 1
    stack['send_to_veh'](_far_denm(902, t0))
    assert ros.spin_until(lambda: any(m.sequence == 902 for m in got), 20)
    assert veh._rx_worker.state == 'running'
    veh._rx_worker.failed_at = None  # the later cases of this module see a healthy node


def test_garbage_is_dropped_and_counted(stack):
    """A datagram that is no DENM is dropped and counted by reason."""
    stack['send_to_veh'](b'\x07\xd2\x00\x00not a denm')
    stack['send_to_veh'](b'\x07\xd1\x00\x00')  # a CAM port
    veh = stack['veh']
    assert stack['ros'].spin_until(
        lambda: veh.counters().get('dropped_malformed', 0) >= 1
        and veh.counters().get('dropped_not_denm', 0) >= 1, 10)


@pytest.mark.parametrize('overrides, names', [
    ({'udp_listen': '127.0.0.1:1'}, 'udp_accept'),        # listening without consent
    ({'gn_accept': True, 'udp_send_to': '127.0.0.1:9'}, 'gn_accept'),  # no interface
    ({}, 'udp_send_to'),                                    # no face at all
    ({'udp_send_to': 'nohost'}, 'udp_send_to'),             # not host:port
    ({'udp_send_to': '127.0.0.1:9', 'its_station_id': -1}, 'its_station_id'),  # range
    ({'udp_send_to': '127.0.0.1:9', 'station_id': -1}, 'station_id'),  # old name too
    ({'udp_send_to': '127.0.0.1:9', 'station_id': 1, 'its_station_id': 2},
     'station_id'),                                       # old and new name: refused
    ({'udp_send_to': '127.0.0.1:9', 'station_lat': 91.0}, 'station_lat'),
])
def test_bad_parameters_name_themselves(stack, overrides, names):
    """A bad parameter stops the node at start-up with a message naming it."""
    with pytest.raises(ParameterError, match=names):
        DenmGateway(context=stack['ros'].context, namespace='bad',
                    parameter_overrides=_params(**overrides))


def test_old_parameter_name_still_read(stack):
    """station_id, the deprecated name of its_station_id, still sets the ITS StationID for
    this release (the vehicle node of the stack is given only the old name)."""
    assert stack['veh'].station.station_id == 99
    assert stack['veh'].settings.its_station_id == 99


@pytest.mark.root
def test_geonetworking_face_end_to_end(stack, veth):
    """RSU node on one end of a veth sends GN frames (and the UDP form); the vehicle node
    on the other end accepts them and publishes the alert; the GN frame's payload is the
    UDP datagram byte for byte."""
    ros = stack['ros']
    a_dev, b_dev = veth
    sink = _udp_sink()
    capture, _ = net.open_gn(b_dev)
    try:
        ros.add(DenmGateway(context=ros.context, namespace='gna', parameter_overrides=_params(
            gn_iface=a_dev, udp_send_to=f'127.0.0.1:{sink.getsockname()[1]}',
            its_station_id=555, source_id='rsu_server_01', repeat_interval_s=0.2)))
        ros.add(DenmGateway(context=ros.context, namespace='gnb', parameter_overrides=_params(
            gn_iface=b_dev, gn_accept=True, gn_send=False, its_station_id=556)))
        probe = ros.node('gn_probe')
        got = []
        probe.create_subscription(Alert, '/gnb/v2x/alert', got.append, qos.ALERT)
        pub = probe.create_publisher(Alert, '/gna/v2x/alert_sent', qos.ALERT_SENT)
        assert ros.spin_until(lambda: pub.get_subscription_count() > 0, 20)
        pub.publish(_sent_msg(7, kind=Alert.KIND_BLOCKAGE))
        assert ros.spin_until(lambda: any(m.sequence == 7 for m in got), 15)
        m = next(m for m in got if m.sequence == 7)
        assert (m.source_id, m.kind, m.path, m.authenticated) == (
            'denm:555', Alert.KIND_BLOCKAGE, Alert.PATH_DENM, False)
        frames, datagrams = [], []

        def both():
            for sock, out in ((capture, frames), (sink, datagrams)):
                sock.settimeout(0.01)
                try:
                    out.append(sock.recv(65535))
                except TimeoutError:
                    pass
            return frames and datagrams
        assert ros.spin_until(both, 10)
        payload = link.parse_gn(link.parse_ethernet(frames[0])).payload
        assert payload in datagrams or ros.spin_until(
            lambda: both() and payload in datagrams, 5)
    finally:
        capture.close()
        sink.close()


WS = Path(__file__).resolve().parents[3]
CONFIG = WS / 'launch' / 'config' / 'denm_gateway.yaml'


def test_config_yaml_is_what_the_node_declares():
    """launch/config/denm_gateway.yaml lists every parameter the node declares, with its
    default."""
    values = yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters']
    declared = defaults(PARAMETERS)
    assert set(values) == set(declared)
    for name, value in values.items():
        default = declared[name]
        assert type(value) is type(default), name
        assert value == default or (math.isnan(value) and math.isnan(default)), name


def test_launch_files_start_it_only_when_enabled():
    """Both launch files run denm_gateway only with enable_denm:=true, with the args set
    as its parameters (each one a key of its config YAML)."""
    sys.path.insert(0, str(WS / 'scripts'))
    import v2x_launch
    keys = set(yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters'])
    for launch, args, expect in (
            ('rsu.launch.xml', {'denm_udp_send_to': '127.0.0.1:4400'},
             {'udp_send_to': '127.0.0.1:4400', 'source_id': ''}),
            ('vehicle.launch.xml', {'denm_udp_listen': '127.0.0.1:4401',
                                    'denm_udp_accept': 'true'},
             {'udp_listen': '127.0.0.1:4401', 'udp_accept': True})):
        base = {'key_file': '/k'}
        off = v2x_launch.Launcher({**base, **args}).load(WS / 'launch' / launch)
        assert 'denm_gateway' not in [s.name for s in off]
        on = v2x_launch.Launcher({**base, **args, 'enable_denm': 'true'}).load(
            WS / 'launch' / launch)
        spec = next(s for s in on if s.name == 'denm_gateway')
        params = {k: v for d in spec.param_dicts for k, v in d.items()}
        assert set(params) <= keys
        assert expect.items() <= params.items()


def test_bad_parameter_exits_2_naming_it():
    """The real executable with the config file and a listen address but no consent exits 2
    with a message naming udp_accept."""
    run = subprocess.run(['denm_gateway', '--ros-args', '--params-file', str(CONFIG),
                          '-p', 'udp_listen:=127.0.0.1:9'], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2, run.stderr
    assert "parameter 'udp_accept'" in run.stderr
