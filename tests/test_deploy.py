"""deploy/: the systemd units verify and are hardened, their writable paths match what the
launch files write, and logrotate leaves the gateway's own rotation alone."""

import configparser
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, 'deploy')
UNITS = {'rsu': os.path.join(DEPLOY, 'systemd', 'v2x-rsu.service'),
         'vehicle': os.path.join(DEPLOY, 'systemd', 'v2x-vehicle.service')}
SYSTEMD_ANALYZE = shutil.which('systemd-analyze')
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                   reason='systemd-analyze not installed (package systemd)')
HARDENING = {'ProtectSystem': 'strict', 'PrivateTmp': 'true', 'NoNewPrivileges': 'true',
             'ProtectHome': 'true', 'LimitNOFILE': '65536', 'RestrictSUIDSGID': 'true'}


def _service(role: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS[role])
    return parser['Service']


def _launch_defaults(launch: str, **given) -> dict:
    """Each argument's default as the launch file resolves it (lab:=true changes some)."""
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    import v2x_launch
    launcher = v2x_launch.Launcher(given)
    launcher.load(os.path.join(ROOT, 'launch', launch))
    return {name: default for name, (default, _) in launcher.declared.items()}


def _here(role: str, tmp_path) -> str:
    """The unit with ExecStart pointing at this checkout (verify checks it is executable)."""
    text = open(UNITS[role]).read()
    text = text.replace('/opt/v2x/ws/deploy/v2x-stack', os.path.join(DEPLOY, 'v2x-stack'))
    text = re.sub(r'^EnvironmentFile=', 'EnvironmentFile=-', text, flags=re.M)
    path = tmp_path / os.path.basename(UNITS[role])
    path.write_text(text)
    return str(path)


@needs_analyze
@pytest.mark.parametrize('role', sorted(UNITS))
def test_unit_verifies(role, tmp_path):
    """`systemd-analyze verify` finds nothing to say about the unit."""
    result = subprocess.run([SYSTEMD_ANALYZE, 'verify', '--man=no', _here(role, tmp_path)],
                            capture_output=True, text=True, timeout=60)
    said = [line for line in (result.stdout + result.stderr).splitlines()
            if 'v2x-' in line]
    assert result.returncode == 0 and not said, result.stdout + result.stderr


@needs_analyze
@pytest.mark.parametrize('role', sorted(UNITS))
def test_unit_exposure_is_ok(role, tmp_path):
    """`systemd-analyze security --offline` rates the unit's exposure 'OK' (below 3.0)."""
    result = subprocess.run([SYSTEMD_ANALYZE, 'security', '--offline=true', '--no-pager',
                             _here(role, tmp_path)], capture_output=True, text=True,
                            timeout=60)
    if 'Unknown option' in result.stderr or 'unrecognized option' in result.stderr:
        pytest.skip(f'this systemd-analyze has no --offline: {result.stderr.strip()}')
    match = re.search(r'Overall exposure level for \S+: ([0-9.]+)', result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) < 3.0, result.stdout


@pytest.mark.parametrize('role', sorted(UNITS))
def test_unit_is_hardened(role):
    """ProtectSystem=strict (without which ReadWritePaths= means nothing), PrivateTmp,
    NoNewPrivileges, a LimitNOFILE above the 1024 that idle connections exhausted."""
    service = _service(role)
    assert {k: service.get(k) for k in HARDENING} == HARDENING


def test_rsu_writable_paths_are_what_the_launch_writes():
    """Every directory the RSU launch writes by default is writable under the unit, and
    nothing else: StateDirectory (/var/lib/v2x), LogsDirectory, ReadWritePaths."""
    service = _service('rsu')
    writable = {p.lstrip('-') for p in service['ReadWritePaths'].split()}
    writable |= {'/var/lib/' + service['StateDirectory'], '/var/log/' + service['LogsDirectory']}
    args = _launch_defaults('rsu.launch.xml')
    events_parent = os.path.dirname(args['events_dir'])
    needed = {args['state_dir'], args['recording_dir'], args['archive_dir'], args['events_dir'],
              os.path.join(events_parent, 'processed'), os.path.join(events_parent, 'failed')}
    assert needed <= writable, needed - writable
    assert writable - needed <= {'/var/log/v2x'}


def test_alerts_csv_has_one_rotation_owner():
    """logrotate does not touch alerts.csv*: the gateway's RotatingCsv (csv_max_bytes,
    csv_keep) rotates it, and two rotations renamed the same alerts.csv.N files."""
    text = open(os.path.join(DEPLOY, 'logrotate.v2x')).read()
    stanzas = [line for line in text.splitlines()
               if line.strip().endswith('{') and not line.lstrip().startswith('#')]
    assert stanzas and not any('alerts.csv' in line or line.split()[0].endswith('/*')
                               for line in stanzas), stanzas


@pytest.mark.skipif(shutil.which('logrotate') is None,
                    reason='logrotate not installed (package logrotate)')
def test_logrotate_config_parses(tmp_path):
    """`logrotate --debug` reads the file without an error."""
    result = subprocess.run(['logrotate', '--debug', '--state', str(tmp_path / 'state'),
                             os.path.join(DEPLOY, 'logrotate.v2x')], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and 'error' not in result.stderr.lower(), result.stderr


def test_vehicle_writable_paths_are_what_the_launch_writes():
    """The vehicle launch writes its state_dir and the csv_log's directory: both are the
    unit's StateDirectory / LogsDirectory (ProtectSystem=strict makes the rest read-only)."""
    service = _service('vehicle')
    writable = {'/var/lib/' + service['StateDirectory'], '/var/log/' + service['LogsDirectory']}
    writable |= {p.lstrip('-') for p in service.get('ReadWritePaths', '').split()}
    args = _launch_defaults('vehicle.launch.xml')
    assert {args['state_dir'], os.path.dirname(args['csv_log'])} <= writable


def _readme_commands(path: str, needle: str) -> list[str]:
    """The shell commands of a Markdown file's ```sh blocks that name needle, in order
    (continued lines joined)."""
    commands, block = [], None
    for line in open(path).read().splitlines():
        if line.startswith('```'):
            block = [] if block is None and line.strip() == '```sh' else None
            continue
        if block is not None:
            block.append(line)
            joined = '\n'.join(block)
            if not joined.endswith('\\'):
                if needle in joined and not joined.lstrip().startswith(('#', 'sudoedit')):
                    commands.append(joined)
                block = []
    return commands


def test_readme_steps_leave_a_real_intake_token(tmp_path):
    """deploy/README.md's steps, run in their order on a scratch /etc/v2x, leave rsu.env
    with a random intake token that event_intake accepts (they used to install the example
    over the token, leaving the placeholder, which event_intake now refuses)."""
    from v2x_common.params import ParameterError
    from v2x_intake.core import IntakeSettings, load_token
    etc = tmp_path / 'etc_v2x'
    etc.mkdir()
    ran = []
    for command in _readme_commands(os.path.join(DEPLOY, 'README.md'), '/etc/v2x/rsu.env'):
        here = (command.replace('sudo ', '').replace('-o root -g root ', '')
                .replace('/etc/v2x', str(etc)))
        result = subprocess.run(['bash', '-euo', 'pipefail', '-c', here], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
        ran.append(command)
    assert any('rsu.env.example' in c for c in ran) and any('V2X_INTAKE_TOKEN' in c for c in ran)
    env_file = etc / 'rsu.env'
    assert oct(env_file.stat().st_mode & 0o777) == '0o600'
    tokens = [line.split('=', 1)[1] for line in env_file.read_text().splitlines()
              if line.startswith('V2X_INTAKE_TOKEN=')]
    assert len(tokens) == 1, tokens
    assert load_token(IntakeSettings(), {'V2X_INTAKE_TOKEN': tokens[0]}) == tokens[0]
    # the example as shipped is refused, naming the command that makes a good one
    example = open(os.path.join(DEPLOY, 'rsu.env.example')).read()
    placeholder = re.search(r'^V2X_INTAKE_TOKEN=(.*)$', example, re.M).group(1)
    with pytest.raises(ParameterError, match=r'head -c 24 /dev/urandom \| base64'):
        load_token(IntakeSettings(), {'V2X_INTAKE_TOKEN': placeholder})


@pytest.mark.parametrize('graph, exported, arg', [
    (None, True, 'ros_graph_host_only:=true'),
    ('host', True, 'ros_graph_host_only:=true'),
    ('network', False, 'ros_graph_host_only:=false')])
def test_v2x_stack_keeps_the_ros_graph_on_the_host(graph, exported, arg, tmp_path):
    """deploy/v2x-stack (the units' ExecStart) loads the host-only Fast DDS profile for the
    launch process and passes ros_graph_host_only:=true, unless V2X_ROS_GRAPH=network; the
    units and env examples say host, and any other value stops it with exit 2."""
    fake = tmp_path / 'ros2'  # stands for `ros2 launch`: shows what it was given
    fake.write_text('#!/bin/sh\necho "DDS=${FASTDDS_DEFAULT_PROFILES_FILE:-none} '
                    'RTPS=${FASTRTPS_DEFAULT_PROFILES_FILE:-none} ARGS=$*"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('FASTDDS_', 'FASTRTPS_', 'V2X_ROS_GRAPH', 'V2X_FASTDDS3'))}
    env.update(PATH=f'{tmp_path}:{env["PATH"]}', V2X_LAUNCH_ARGS='iface:=wlan0')
    if graph:
        env['V2X_ROS_GRAPH'] = graph
    out = subprocess.run([os.path.join(DEPLOY, 'v2x-stack'), 'vehicle'], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    profile = os.path.join(ROOT, 'launch/config/fastdds_host_only.xml')
    # Kilted here: Fast DDS 3 reads the new name only (env.sh found libfastdds)
    assert (f'DDS={profile} ' in out.stdout) == exported, out.stdout
    assert f'ARGS=launch {ROOT}/launch/vehicle.launch.xml {arg} iface:=wlan0' in out.stdout
    env['V2X_ROS_GRAPH'] = 'everywhere'
    bad = subprocess.run([os.path.join(DEPLOY, 'v2x-stack'), 'rsu'], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and 'expected host or network' in bad.stderr
    for role in UNITS:
        unit = open(UNITS[role]).read()
        assert re.search(r'^Environment=V2X_ROS_GRAPH=host$', unit, re.M), role
        example = open(os.path.join(DEPLOY, f'{role}.env.example')).read()
        assert re.search(r'^V2X_ROS_GRAPH=host$', example, re.M), role
