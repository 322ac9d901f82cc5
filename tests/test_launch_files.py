"""Golden tests: the argv our runner builds for launch/rsu.launch.xml and vehicle.launch.xml.

The golden files hold, for fixed launch arguments, each node's argv as launch_ros builds
it (the rules of launch_ros' Node action: executable, --ros-args, -r __node:=, -r __ns:=,
one --params-file per <param> in order, name/value params in a temporary file keyed by
the node's full name, then -r remaps), with the workspace path as <WS> and each temporary
parameter file replaced by its content, and last the environment set_env gives the node
({"environment": {...}}: the host-only DDS profile by default). Regenerate after an
intended change with V2X_UPDATE_GOLDEN=1 and review the diff.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest
import yaml

WS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WS / 'scripts'))
import v2x_launch  # noqa: E402

GOLDEN = Path(__file__).parent / 'golden'
CASES = {
    'rsu_defaults': ('rsu.launch.xml', {'key_file': '/etc/v2x/hmac.key'}),
    'rsu_demo': ('rsu.launch.xml', {
        'key_file': '/tmp/k', 'namespace': 'site7', 'iface': '127.0.0.1',
        'camera_source': '/media/bikes.mp4', 'profile': '<WS>/launch/config/demo.yaml',
        'enable_intake': 'false', 'detector_backend': 'onnx', 'state_dir': '/tmp/s',
        'console_port': '0', 'console_token_file': '/tmp/console.token',
        'ros_graph_host_only': 'false'}),
    'vehicle_defaults': ('vehicle.launch.xml', {'key_file': '/etc/v2x/hmac.key'}),
    'vehicle_remapped': ('vehicle.launch.xml', {
        'key_file': '/k', 'namespace': 'car1', 'cmd_vel_in': '/teleop/cmd_vel',
        # csv_log:="''" on a shell: real ros2 launch refuses csv_log:= (empty)
        'cmd_vel_out': '/base/cmd_vel', 'csv_log': "''", 'enable_console': 'true',
        'console_bind': '0.0.0.0', 'console_password_file': '/etc/v2x/console.passwd',
        'dds_profile': '/etc/v2x/fastdds_lab.xml'}),
    'vehicle_composed': ('vehicle.launch.xml', {
        'key_file': '/etc/v2x/hmac.key', 'compose': 'true', 'namespace': 'car1',
        'cmd_vel_in': '/teleop/cmd_vel'}),
}


def fake_exec(pkg, exe):
    return f'/opt/ros/prefix/lib/{pkg}/{exe}'


def render(launch, args, tmp_path):
    args = {k: v.replace('<WS>', str(WS)) for k, v in args.items()}
    specs = v2x_launch.Launcher(args).load(WS / 'launch' / launch)
    out = []
    for spec in specs:
        argv = v2x_launch.build_argv(spec, tmp_path, resolve_exec=fake_exec)
        shown = []
        for item in argv:
            if item.startswith(str(tmp_path)):
                shown.append({'temporary params file': yaml.safe_load(Path(item).read_text())})
            else:
                shown.append(item.replace(str(WS), '<WS>'))
        if spec.environ:
            shown.append({'environment': {k: v.replace(str(WS), '<WS>')
                                          for k, v in spec.environ.items()}})
        out.append(shown)
    return out


@pytest.mark.parametrize('case', sorted(CASES))
def test_argv_matches_golden(case, tmp_path, monkeypatch):
    """The runner builds, for both launch files, exactly the argv recorded in tests/golden."""
    monkeypatch.delenv('V2X_KEY_FILE', raising=False)
    monkeypatch.setenv('V2X_FASTDDS3', '0')  # both names of the profile variable
    launch, args = CASES[case]
    got = render(launch, args, tmp_path)
    path = GOLDEN / f'{case}.json'
    if os.environ.get('V2X_UPDATE_GOLDEN'):
        path.write_text(json.dumps(got, indent=1) + '\n')
        pytest.fail(f'{path.name} rewritten: review the diff, then run without V2X_UPDATE_GOLDEN')
    assert got == json.loads(path.read_text())


NODE_CONFIG = {  # the per-node YAML whose keys each node's own tests check are declared
    'alert_gateway': ['alert_gateway.yaml', 'alert_gateway_vehicle.yaml'],
    'event_intake': ['event_intake.yaml'],
    'hazard_detector': ['hazard_detector.yaml'],
    'segment_recorder': ['segment_recorder.yaml'],
    'event_clipper': ['event_clipper.yaml'],
    'speed_policy': ['speed_policy.yaml'],
    'v2x_console': ['v2x_console.yaml'],
}
COMPOSED = {'vehicle_stack': ['alert_gateway', 'speed_policy']}  # executable -> its nodes


def _flat(params, prefix=''):
    for key, value in params.items():
        if isinstance(value, dict):
            yield from _flat(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}'


@pytest.mark.parametrize('profile', ['site.yaml', 'demo.yaml'])
def test_profile_keys_are_node_parameters(profile):
    """Every key of a profile names a node of ours and a parameter in that node's config YAML."""
    data = yaml.safe_load((WS / 'launch/config' / profile).read_text())
    for key, body in data.items():
        assert key.startswith('/**/'), key
        node = key[len('/**/'):]
        assert node in NODE_CONFIG, f'{profile}: {key} is not a node of ours'
        known = set()
        for name in NODE_CONFIG[node]:
            cfg = yaml.safe_load((WS / 'launch/config' / name).read_text())
            known |= set(_flat(cfg['/**']['ros__parameters']))
        unknown = set(_flat(body['ros__parameters'])) - known
        assert not unknown, f'{profile}: {node} has no parameter(s) {sorted(unknown)}'


@pytest.mark.parametrize('launch, args', [('rsu.launch.xml', {}), ('vehicle.launch.xml', {}),
                                          ('vehicle.launch.xml', {'compose': 'true'})])
def test_launch_params_are_in_node_config(launch, args, monkeypatch):
    """Each name/value param of the launch files is a key of that node's config YAML (of
    one of the composed nodes' for vehicle_stack), and the composed nodes' configs share no
    key (their parameter files and values apply to both)."""
    monkeypatch.setenv('V2X_KEY_FILE', '/k')
    for spec in v2x_launch.Launcher(args).load(WS / 'launch' / launch):
        assert (spec.name in NODE_CONFIG) != (spec.exec in COMPOSED), spec.label
        node_files = {f for files in NODE_CONFIG.values() for f in files}
        cfg_files = [p for p in spec.param_files if p.startswith(str(WS / 'launch/config'))
                     and Path(p).name in node_files]
        keys = [set(yaml.safe_load(Path(f).read_text())['/**']['ros__parameters'])
                for f in cfg_files]
        assert len(keys) == len(COMPOSED.get(spec.exec, [spec.name])), spec.label
        assert len(set.union(*keys)) == sum(len(k) for k in keys), 'shared parameter names'
        for values in spec.param_dicts:
            for name in values:
                assert name in set.union(*keys), f'{launch}: {spec.label} has no {name!r}'


def test_both_launch_files_start_every_node(ros, tmp_path, mcast):
    """rsu.launch.xml and vehicle.launch.xml start every node for real (testsrc camera),
    each node appears in the ROS graph, and Ctrl-C stops them all cleanly."""
    key = tmp_path / 'hmac.key'
    key.write_text('launch-test-key-0123456789\n')
    key.chmod(0o600)
    common = [f'key_file:={key}', 'iface:=127.0.0.1', f'group:={mcast["group"]}',
              f'port:={mcast["port"]}', f'profile:={WS}/launch/config/demo.yaml',
              f'state_dir:={tmp_path}/state']
    env = dict(os.environ, V2X_INTAKE_TOKEN='launch-test-token')
    rsu = [sys.executable, str(WS / 'scripts/v2x_launch.py'), str(WS / 'launch/rsu.launch.xml'),
           *common, 'namespace:=rsu', 'camera_source:=testsrc', 'detector_backend:=onnx',
           # the detector's default source: the recorder's local stream (own port here)
           f'local_stream:=udp://127.0.0.1:{mcast["port"] + 1}',
           f'recording_dir:={tmp_path}/rec', f'archive_dir:={tmp_path}/archive',
           f'events_dir:={tmp_path}/events', 'console_port:=0']
    veh = [sys.executable, str(WS / 'scripts/v2x_launch.py'),
           str(WS / 'launch/vehicle.launch.xml'), *common, 'namespace:=veh',
           f'csv_log:={tmp_path}/alerts.csv', 'enable_console:=true', 'console_port:=0']
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) for argv in (rsu, veh)]
    expected = {('/rsu', 'alert_gateway'), ('/rsu', 'event_intake'),
                ('/rsu', 'hazard_detector'), ('/rsu', 'segment_recorder'),
                ('/rsu', 'event_clipper'), ('/rsu', 'v2x_console'), ('/veh', 'alert_gateway'),
                ('/veh', 'speed_policy'), ('/veh', 'v2x_console')}
    node = ros.node('launch_graph_probe')

    def graph():
        return {(ns, name) for name, ns in node.get_node_names_and_namespaces()}
    try:
        ok = ros.spin_until(lambda: expected <= graph(), timeout=90)
        missing = expected - graph()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        outs = [p.communicate(timeout=60)[0] for p in procs]
    assert ok, f'missing nodes {sorted(missing)}\n' + '\n'.join(o[-3000:] for o in outs)
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
        assert 'process has died' not in out, out[-3000:]


def _params(specs) -> dict:
    """node label -> every name/value parameter the launch gives it."""
    out = {}
    for spec in specs:
        for values in spec.param_dicts:
            out.setdefault(spec.label, {}).update(values)
    return out


def test_lab_mode_puts_everything_under_lab_dir(monkeypatch):
    """lab:=true: the RSU's directories, state and token under lab_dir/rsu, the vehicle's
    under lab_dir/vehicle, the camera testsrc, the onnx detector, the key lab_dir/hmac.key
    and a token made when missing; an argument given still wins; without lab nothing
    changes (the production paths)."""
    monkeypatch.delenv('V2X_KEY_FILE', raising=False)
    rsu = _params(v2x_launch.Launcher({'lab': 'true', 'lab_dir': '/l', 'archive_dir': '/a'})
                  .load(WS / 'launch/rsu.launch.xml'))
    assert rsu['alert_gateway']['key_file'] == '/l/hmac.key'
    assert rsu['alert_gateway']['state_dir'] == '/l/rsu/state/alert_gateway'
    assert rsu['segment_recorder']['source'] == 'testsrc'
    assert rsu['segment_recorder']['recording_dir'] == '/l/rsu/rec'
    assert rsu['event_clipper']['archive_dir'] == '/a'   # given: it wins
    assert rsu['hazard_detector']['backend'] == 'onnx'
    assert rsu['event_intake'] == {'events_dir': '/l/rsu/events',
                                   'state_dir': '/l/rsu/state/event_intake',
                                   'token_file': '/l/rsu/intake.token',
                                   'token_file_create': True}
    veh = _params(v2x_launch.Launcher({'lab': 'true', 'lab_dir': '/l'})
                  .load(WS / 'launch/vehicle.launch.xml'))
    assert {k: veh['alert_gateway'][k] for k in ('key_file', 'state_dir', 'csv_log')} == {
        'key_file': '/l/hmac.key', 'state_dir': '/l/vehicle/state/alert_gateway',
        'csv_log': '/l/vehicle/alerts.csv'}
    plain = _params(v2x_launch.Launcher({}).load(WS / 'launch/rsu.launch.xml'))
    assert plain['segment_recorder']['source'] == '/dev/video0'
    assert plain['event_intake']['token_file'] == '' and not plain['event_intake'][
        'token_file_create']
    assert plain['hazard_detector']['backend'] == 'ultralytics'


@pytest.mark.parametrize('compose', ['false', 'true'])
def test_vehicle_site_sets_the_gateway_origin(compose):
    """vehicle.launch.xml's site_lat/site_lon set the gateway's origin (where it is, and
    which broker tiles it subscribes, until a GPS fix), composed or not; the default is the
    RSU launch's site, as in alert_gateway_vehicle.yaml."""
    specs = v2x_launch.Launcher({'key_file': '/k', 'compose': compose, 'site_lat': '48.1',
                                 'site_lon': '11.5'}).load(WS / 'launch/vehicle.launch.xml')
    (gateway,) = [p for label, p in _params(specs).items() if 'origin_lat' in p]
    assert (gateway['origin_lat'], gateway['origin_lon']) == (48.1, 11.5)
    yaml_cfg = yaml.safe_load((WS / 'launch/config/alert_gateway_vehicle.yaml').read_text())
    default = _params(v2x_launch.Launcher({'key_file': '/k'})
                      .load(WS / 'launch/vehicle.launch.xml'))['alert_gateway']
    assert default['origin_lat'] == yaml_cfg['/**']['ros__parameters']['origin_lat']
    assert default['origin_lon'] == yaml_cfg['/**']['ros__parameters']['origin_lon']
