"""The launch runner builds the argv of launch_ros and refuses what it does not implement."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

WS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(WS / 'scripts'))
import v2x_launch  # noqa: E402

FIX = Path(__file__).parent / 'launch_fixtures'


def fake_exec(pkg, exe):
    return f'/prefix/lib/{pkg}/{exe}'


def argvs(path, tmp_path, **given):
    specs = v2x_launch.Launcher(given).load(path)
    return [v2x_launch.build_argv(s, tmp_path, resolve_exec=fake_exec) for s in specs]


def params_of(path):
    return yaml.safe_load(Path(path).read_text())


def test_argv_matches_launch_ros_rules(tmp_path, monkeypatch):
    """Each node gets the argv launch_ros builds (exec, args, name, ns, params, remaps)."""
    monkeypatch.setenv('V2X_TEST_HOME', '/home/op')
    a, b, d, e = argvs(FIX / 'all_features.launch.xml', tmp_path)
    # node a: args, name, namespace, a param file, two name/value params (one temp file
    # each, keyed by the full node name), then the remap.
    assert a[:9] == ['/prefix/lib/v2x_common/tool_a', '--flag', '1', '--ros-args',
                     '-r', '__node:=a', '-r', '__ns:=/top', '--params-file']
    assert a[9] == str(FIX / 'cfg/a.yaml')
    assert a[10] == '--params-file' and a[12] == '--params-file'
    assert params_of(a[11]) == {'/top/a': {'ros__parameters': {'rate': 5}}}
    assert params_of(a[13]) == {'/top/a': {'ros__parameters': {'label': 'site7-x'}}}
    assert a[14:] == ['-r', 'in:=/v2x/alert']
    # node b: the namespace pushed in the group; tool_c is skipped (unless true).
    assert b[:7] == ['/prefix/lib/v2x_common/tool_b', '--ros-args', '-r', '__node:=b',
                     '-r', '__ns:=/site7', '--params-file']
    assert params_of(b[7]) == {'/site7/b': {'ros__parameters': {'who': 'inner'}}}
    # node d: after the group, no namespace and no name: the wildcard key; $(env) default.
    assert d[:3] == ['/prefix/lib/v2x_common/tool_d', '--ros-args', '--params-file']
    assert params_of(d[3]) == {'/**': {'ros__parameters': {'home': '/home/op'}}}
    # node e: from the include, with the include's arg and an absolute namespace.
    assert e[:6] == ['/prefix/lib/v2x_common/tool_e', '--ros-args', '-r', '__node:=e',
                     '-r', '__ns:=/abs']
    assert params_of(e[7]) == {'/abs/e': {'ros__parameters': {'who': 'from_include'}}}


def test_cli_arguments_override_defaults_and_conditions(tmp_path):
    """name:=value overrides a default, and flips if/unless."""
    specs = argvs(FIX / 'all_features.launch.xml', tmp_path, ns='other', enable_b='false')
    execs = [s[0].rsplit('/', 1)[1] for s in specs]
    assert execs == ['tool_a', 'tool_c', 'tool_d', 'tool_e']
    assert ['-r', '__ns:=/other'] == specs[1][2:4]


def test_env_default_used_when_unset(tmp_path, monkeypatch):
    """$(env NAME DEFAULT) falls back to DEFAULT."""
    monkeypatch.delenv('V2X_TEST_HOME', raising=False)
    d = argvs(FIX / 'all_features.launch.xml', tmp_path)[2]
    assert params_of(d[3])['/**']['ros__parameters']['home'] == '/nowhere'


@pytest.mark.parametrize('xml,needle', [
    ('<launch><executable cmd="ls"/></launch>', 'tag <executable> is not implemented'),
    ('<launch><node pkg="p" exec="e" respawn="true"/></launch>', 'respawn not implemented'),
    ('<launch><let name="x" value="$(eval 1+1)"/></launch>', 'substitution $(eval ...)'),
    ('<launch><let name="x" value="$(var nope)"/></launch>', "'nope' is not set"),
    ('<launch><arg name="needed"/></launch>', "argument 'needed' has no default"),
    ('<launch><group if="maybe"/></launch>', "condition 'maybe'"),
    ('<launch><node pkg="p" exec="e"><env name="A" value="1"/></node></launch>',
     'tag <env> is not implemented'),
    ('<launch><set_env name="A" value="1" scoped="x"/></launch>', 'attribute(s) scoped'),
    ('<launch><param name="a" value="1"/></launch>', 'not allowed inside <launch>'),
    ('<launch><let name="x" value="$(var x"/></launch>', 'unterminated substitution'),
    ('<launch', 'not well-formed XML'),
])
def test_refuses_what_it_does_not_implement(tmp_path, xml, needle):
    """Unknown tags, attributes and substitutions (and plain mistakes) stop with a clear error."""
    path = tmp_path / 'bad.launch.xml'
    path.write_text(xml)
    with pytest.raises(v2x_launch.LaunchError) as err:
        v2x_launch.Launcher({}).load(path)
    assert needle in str(err.value)


def test_unknown_cli_argument_is_refused(tmp_path, capsys):
    """A misspelt name:=value is an error naming it, not silently ignored."""
    code = v2x_launch.main([str(FIX / 'included.launch.xml'), 'who:=x', 'whom:=y', '--print'])
    assert code == 2
    assert 'whom' in capsys.readouterr().err


def test_runs_nodes_and_stops_them_on_sigint(tmp_path):
    """The runner starts each node process, with the environment set_env gave it, and stops
    them all on Ctrl-C (SIGINT)."""
    prefix = tmp_path / 'prefix'
    (prefix / 'share/ament_index/resource_index/packages').mkdir(parents=True)
    (prefix / 'share/ament_index/resource_index/packages/fakepkg').write_text('')
    (prefix / 'share/fakepkg').mkdir(parents=True)
    bindir = prefix / 'lib/fakepkg'
    bindir.mkdir(parents=True)
    marker = tmp_path / 'stopped'
    script = bindir / 'sleeper'
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, signal, sys, time
        def bye(*_):
            open({str(marker)!r}, 'a').write(sys.argv[sys.argv.index('-r') + 1] + ':'
                                              + os.environ.get('V2X_TEST_SET', '-') + '\\n')
            sys.exit(0)
        signal.signal(signal.SIGINT, bye)
        print('ready', sys.argv[1:], flush=True)
        while True:
            time.sleep(0.1)
        """))
    script.chmod(0o755)
    launch = tmp_path / 'two.launch.xml'
    launch.write_text('<launch><node pkg="fakepkg" exec="sleeper" name="one"/>'
                      '<set_env name="V2X_TEST_SET" value="yes"/>'
                      '<node pkg="fakepkg" exec="sleeper" name="two"/></launch>')
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    proc = subprocess.Popen([sys.executable, str(WS / 'scripts/v2x_launch.py'), str(launch)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 30
    while sum('ready' in line for line in lines) < 2 and time.monotonic() < deadline:
        lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, ''.join(lines) + out
    assert sorted(marker.read_text().split()) == ['__node:=one:-', '__node:=two:yes']


def test_set_env_applies_in_scope_to_later_nodes(tmp_path, monkeypatch):
    """set_env gives the nodes after it the variable (as launch's context does, $(env)
    then reads it too), a scoped group keeps its own to itself, an unscoped one does not,
    a condition can skip it, and if with unless is refused as launch refuses it."""
    monkeypatch.delenv('V2X_T', raising=False)
    path = tmp_path / 'env.launch.xml'
    path.write_text(textwrap.dedent("""\
        <launch>
          <node pkg="p" exec="first" name="first"/>
          <set_env name="V2X_T" value="outer"/>
          <group><set_env name="V2X_T" value="inner"/><node pkg="p" exec="e" name="in"/></group>
          <node pkg="p" exec="e" name="after_scoped"/>
          <group scoped="false"><set_env name="V2X_U" value="$(env V2X_T)"/></group>
          <set_env name="V2X_V" value="no" if="false"/>
          <node pkg="p" exec="e" name="last"/>
        </launch>"""))
    specs = {s.name: s.environ for s in v2x_launch.Launcher({}).load(path)}
    assert specs == {'first': {}, 'in': {'V2X_T': 'inner'}, 'after_scoped': {'V2X_T': 'outer'},
                     'last': {'V2X_T': 'outer', 'V2X_U': 'outer'}}
    path.write_text('<launch><set_env name="A" value="1" if="true" unless="false"/></launch>')
    with pytest.raises(v2x_launch.LaunchError, match='if and unless are exclusive'):
        v2x_launch.Launcher({}).load(path)


@pytest.mark.parametrize('fastdds3, names', [
    ('1', {'FASTDDS_DEFAULT_PROFILES_FILE'}),
    ('0', {'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'})])
@pytest.mark.parametrize('launch', ['rsu.launch.xml', 'vehicle.launch.xml'])
def test_every_node_gets_the_host_only_profile_by_default(launch, fastdds3, names, tmp_path,
                                                          monkeypatch):
    """Every node of both launch files loads the host-only Fast DDS profile by default,
    under the variable the Fast DDS in use reads (3: FASTDDS_, 2: FASTRTPS_ too, unless
    env.sh found Fast DDS 3), a dds_profile of one's own instead, and none with
    ros_graph_host_only:=false."""
    monkeypatch.setenv('V2X_FASTDDS3', fastdds3)
    profile = str(WS / 'launch/config/fastdds_host_only.xml')
    specs = v2x_launch.Launcher({'key_file': '/k'}).load(WS / 'launch' / launch)
    assert specs and all(s.environ == dict.fromkeys(names, profile) for s in specs)
    assert v2x_launch.host_only_environ() == dict.fromkeys(names, profile)
    own = v2x_launch.Launcher({'key_file': '/k', 'dds_profile': '/etc/v2x/lan.xml'})
    assert all(s.environ == dict.fromkeys(names, '/etc/v2x/lan.xml')
               for s in own.load(WS / 'launch' / launch))
    off = v2x_launch.Launcher({'key_file': '/k', 'ros_graph_host_only': 'false'})
    assert all(s.environ == {} for s in off.load(WS / 'launch' / launch))


# --- where real `ros2 launch` refuses or warns, the runner does the same -------------------

@pytest.mark.parametrize('item', ['csv_log:=', ':=x', 'csv_log'])
def test_malformed_cli_argument_is_refused_like_ros2_launch(item, capsys):
    """`name:=` (empty) is malformed for ros2launch; the runner refuses it the same way and
    says how to write an empty value."""
    with pytest.raises(SystemExit) as exit_:
        v2x_launch.parse_cli([str(FIX / 'included.launch.xml'), item])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"malformed launch argument '{item}'" in err and 'name:="\'\'"' in err


def test_quoted_empty_value_is_an_empty_string(tmp_path):
    """name:="''" (the shell passes '') gives an empty string parameter under both."""
    opts, given = v2x_launch.parse_cli([str(FIX / 'included.launch.xml'), "who:=''"])
    b = argvs(FIX / 'included.launch.xml', tmp_path, **given)[0]
    assert params_of(b[-1])['/abs/e']['ros__parameters'] == {'who': ''}


def test_missing_param_file_warns_and_starts_the_node(tmp_path, capsys):
    """A <param from> file that does not exist: a warning naming it, and the node's argv
    without it (real launch_ros does this; passing it made every node die)."""
    launch = tmp_path / 'p.launch.xml'
    launch.write_text('<launch><arg name="profile" default="/no/such/site.yaml"/>'
                      '<node pkg="p" exec="e" name="n"><param from="$(var profile)"/>'
                      '<param name="x" value="1"/></node></launch>')
    argv = argvs(launch, tmp_path)[0]
    assert '/no/such/site.yaml' not in argv
    assert argv[:5] == ['/prefix/lib/p/e', '--ros-args', '-r', '__node:=n', '--params-file']
    assert 'Parameter file path is not a file: /no/such/site.yaml' in capsys.readouterr().err


@pytest.mark.parametrize('value, what', [
    ('null', 'null'), ('~', 'null'),
    ('{a: 1}', 'a map'),
    ('2026-12-02', 'a date'),
    ('[1, a]', 'a list of mixed'), ('[[1], [2]]', 'a list of mixed or nested'),
])
def test_value_that_is_no_parameter_type_is_refused(tmp_path, value, what):
    """Values YAML reads as null, a map, a date or a mixed list are refused (real launch
    refuses them; the runner used to write them into parameter files)."""
    launch = tmp_path / 'v.launch.xml'
    launch.write_text('<launch><arg name="v" default="x"/><node pkg="p" exec="e">'
                      '<param name="site" value="$(var v)"/></node></launch>')
    with pytest.raises(v2x_launch.LaunchError) as err:
        v2x_launch.Launcher({'v': value}).load(launch)
    assert f"parameter 'site': value {value!r} reads as {what}" in str(err.value)


@pytest.mark.parametrize('value, expected', [
    ('[1, 2.5]', [1.0, 2.5]), ('[a, b]', ['a', 'b']), ("'2026-12-02'", '2026-12-02'),
    ('5', 5), ('true', True), ("''", ''),
])
def test_parameter_types_launch_accepts(tmp_path, value, expected):
    """Scalars, uniform lists (ints and floats become floats) and quoted strings pass."""
    launch = tmp_path / 'v.launch.xml'
    launch.write_text('<launch><arg name="v" default="x"/><node pkg="p" exec="e">'
                      '<param name="site" value="$(var v)"/></node></launch>')
    argv = argvs(launch, tmp_path, v=value)[0]
    assert params_of(argv[-1])['/**']['ros__parameters']['site'] == expected


@pytest.mark.parametrize('ns', ['a//b', 'a/1b', 'a b', 'a/-'])
def test_invalid_namespace_is_refused(tmp_path, ns):
    """namespace:=a//b is refused (real launch refuses; the runner passed /a//b)."""
    with pytest.raises(v2x_launch.LaunchError, match='is not a valid ROS namespace'):
        argvs(WS / 'launch' / 'vehicle.launch.xml', tmp_path, namespace=ns, key_file='/k')


def test_print_leaves_no_temporary_directory(tmp_path, capsys, monkeypatch):
    """--print shows temporary parameter files by their content and leaves nothing in
    the temporary directory (it left a /tmp/v2x_launch_* per call)."""
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    monkeypatch.setattr(v2x_launch.tempfile, 'tempdir', None)  # re-read TMPDIR
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.environ.get('AMENT_PREFIX_PATH', ''))
    code = v2x_launch.main([str(WS / 'launch' / 'vehicle.launch.xml'), 'key_file:=/k',
                            "csv_log:=''", '--print'])
    out = capsys.readouterr().out
    assert code == 0, out
    assert list(tmp_path.iterdir()) == []
    lines = [json.loads(line) for line in out.splitlines()]
    gateway = lines[0]
    shown = [item for item in gateway if isinstance(item, dict)
             and 'temporary params file' in item]
    assert 'FASTDDS_DEFAULT_PROFILES_FILE' in gateway[-1]['environment']
    assert {'csv_log': ''} in [next(iter(d['temporary params file'].values()))['ros__parameters']
                               for d in shown]
