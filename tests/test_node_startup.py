"""Every node's executable refuses a wrongly typed or out-of-range parameter the same way.

One message format (``<node>: parameter '<name>': <problem>``), exit status 2, no
traceback, from the one parameter mechanism (v2x_common.params) and the one main
(v2x_common.node_main). The processes run side by side to keep the module short.
"""

import os
import shutil
import subprocess

import pytest

#: node -> (parameter argument, parameter name): a wrong type for each node
CASES = {
    'alert_gateway': ('port:=abc', 'port'),             # a string for an integer
    'speed_policy': ('slowdown_ratio:=fast', 'slowdown_ratio'),
    'event_intake': ('http_port:=8088.5', 'http_port'),  # not a whole number
    'hazard_detector': ('imgsz:=abc', 'imgsz'),
    'segment_recorder': ('segment_s:=true', 'segment_s'),  # a bool for a number
    'event_clipper': ('clip_every_alert:=3', 'clip_every_alert'),
}
RANGE_CASES = {
    'alert_gateway': ('ttl:=300', 'ttl', 'within [0, 255]'),
    'speed_policy': ('slowdown_ratio:=2', 'slowdown_ratio', 'within [0, 1]'),
}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Start every case at once; node -> (returncode, stderr)."""
    tmp = tmp_path_factory.mktemp('startup')
    env = dict(os.environ, V2X_KEY='startup-test-key-0123456789',
               V2X_INTAKE_TOKEN='startup-test-token-0123')
    procs = {}
    cases = {(node, 'type'): (arg, name, 'must be') for node, (arg, name) in CASES.items()}
    cases.update({(node, 'range'): case for node, case in RANGE_CASES.items()})
    for (node, what), (arg, _, _) in cases.items():
        exe = shutil.which(node)
        assert exe, f'{node} is not on PATH: source scripts/env.sh'
        procs[node, what] = subprocess.Popen(
            [exe, '--ros-args', '-p', arg, '-p', f'state_dir:={tmp / node}'],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = {}
    for key, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        out[key] = (proc.returncode, err, cases[key])
    return out


@pytest.mark.parametrize('node', sorted(CASES))
def test_wrong_type_exits_2_naming_it(runs, node):
    """A value of the wrong type stops the node with status 2 and the one message."""
    code, err, (arg, name, words) = runs[node, 'type']
    assert code == 2, err
    assert f"{node}: parameter '{name}': {words}" in err, err
    assert 'Traceback' not in err


@pytest.mark.parametrize('node', sorted(RANGE_CASES))
def test_out_of_range_exits_2_naming_it(runs, node):
    """A value outside the declared range stops the node with status 2 naming the range."""
    code, err, (arg, name, words) = runs[node, 'range']
    assert code == 2, err
    assert f"{node}: parameter '{name}': must be {words}" in err, err
