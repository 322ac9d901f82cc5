"""Claims of the docs (issue 19, items 5-8 and 10) checked against what the code does;
each test names the doc and the line it guards."""

import math
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from v2x_bridge.alert_gateway import PARAMETERS
from v2x_common import mappings as m
from v2x_common.params import defaults
from v2x_policy.policy import AlertData, AlertReceived, PeersReceived, PolicySettings, State, step
from v2x_policy.rules import DEFAULT_RULE_NAMES, DEFAULT_RULES, parse_rules

WS = Path(__file__).resolve().parents[1]
DOCS = WS / 'docs'


def doc_line(path: Path, pattern: str) -> tuple[int, str]:
    """(line number, text) of the first line of a doc matching pattern (a claim may also
    stand in a console transcript below it, which tests/test_docs_runnable.py runs)."""
    hits = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(pattern, line)]
    assert hits, f'{path.name}: no line matches {pattern!r}'
    return hits[0]


@pytest.mark.skipif(shutil.which('speed_policy') is None, reason='speed_policy not on PATH')
def test_speed_policy_md_bad_parameter_message_is_what_the_node_prints():
    """speed_policy.md (Parameters): the quoted refusal of a rule listed without its
    fields is, byte for byte, what the node prints, with exit code 2."""
    n, line = doc_line(DOCS / 'speed_policy.md', r"parameter 'ghost\.kinds'")
    quoted = re.search(r'`([^`]*ghost\.kinds[^`]*)`', line).group(1)
    proc = subprocess.run(['speed_policy', '--ros-args', '-p', 'rules:=[slow_hazard, ghost]'],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, ROS_DOMAIN_ID='231'))
    assert proc.returncode == 2, proc.stderr
    assert quoted in (proc.stdout + proc.stderr).splitlines(), \
        f'speed_policy.md:{n} quotes {quoted!r}; the node printed {proc.stderr!r}'


def _alert(kind, distance):
    return AlertData(source_id='rsu_a', sequence=1, stamp_ns=10**18, kind=kind,
                     severity=m.SEVERITY_HIGH, suggest=m.SUGGEST_NONE,
                     detection_time_ns=10**18,
                     validity_s=60.0, cancelled=False, latitude=math.nan,
                     longitude=math.nan, distance_m=distance)


@pytest.mark.parametrize('kind, distance, rule', [
    (m.KIND_COLLISION, 300.0, 'slow_hazard+rsu_stale'),  # slow down escalated: suffixed
    (m.KIND_BLOCKAGE, 100.0, 'stop_blockage'),           # already stop: its own name
])
def test_speed_policy_md_rsu_stale_rule_name(kind, distance, rule):
    """speed_policy.md (RSU stale): with rsu_stale_action stop and a stale RSU, the rule is
    reported as <rule>+rsu_stale only when its own action is milder than stop."""
    n, _ = doc_line(DOCS / 'speed_policy.md', r'`<rule>\+rsu_stale`')
    lines = (DOCS / 'speed_policy.md').read_text().splitlines()
    assert 'milder than stop' in ' '.join(lines[n - 1:n + 1]), f'speed_policy.md:{n}'
    settings = PolicySettings(rules=parse_rules(list(DEFAULT_RULE_NAMES),
                                                lambda name: DEFAULT_RULES[name]),
                              rsu_stale_action='stop')
    state, _ = step(State(), AlertReceived(_alert(kind, distance), 1e9), settings)
    state, _ = step(state, PeersReceived(frozenset({'rsu_a'}), 1e9 + 1), settings)
    assert state.decision.rule == rule


def test_architecture_md_vehicle_csv_path_is_the_launch_default():
    """ARCHITECTURE.md (Files): the vehicle CSV path is vehicle.launch.xml's csv_log
    default (which overrides the YAML), the YAML agrees, and the node's own default is off."""
    n, line = doc_line(DOCS / 'ARCHITECTURE.md', r'vehicle CSV log')
    path = re.search(r'(/\S+\.csv)', line).group(1)
    sys.path.insert(0, str(WS / 'scripts'))
    import v2x_launch  # the default as the launch file resolves it (lab:=true changes it)
    launcher = v2x_launch.Launcher({})
    launcher.load(WS / 'launch' / 'vehicle.launch.xml')
    assert launcher.declared['csv_log'][0] == path, f'ARCHITECTURE.md:{n}'
    config = yaml.safe_load((WS / 'launch' / 'config' / 'alert_gateway_vehicle.yaml')
                            .read_text())
    assert config['/**']['ros__parameters']['csv_log'] == path
    assert defaults(PARAMETERS)['csv_log'] == '', \
        f"ARCHITECTURE.md:{n} says the node's own default is off"


def test_architecture_md_names_only_files_that_exist():
    """ARCHITECTURE.md names no file the repository lacks (it pointed to ENVIRONMENT.md)."""
    text = (DOCS / 'ARCHITECTURE.md').read_text()
    names = set(re.findall(r'\b([\w./-]+\.md)\b', text))
    present = {p.name for p in WS.rglob('*.md') if '.venv' not in p.parts} | \
        {str(p.relative_to(WS)) for p in WS.rglob('*.md') if '.venv' not in p.parts}
    missing = sorted(name for name in names if name not in present)
    assert not missing, missing


def test_readme_and_makefile_give_one_warm_setup_time():
    """README.md and the Makefile give the same time for a warm `make setup` (measured:
    `/usr/bin/time -f %e make setup` on a built tree: 0.95 s on 2 loaded cores)."""
    n, readme = doc_line(WS / 'README.md', r'warm re-run')
    _, makefile = doc_line(WS / 'Makefile', r'warm re-run')
    figure = re.search(r'takes (about a second|a few seconds|[^;).]+)', readme).group(1)
    assert figure == 'about a second' and figure in makefile, (f'README.md:{n}', makefile)
