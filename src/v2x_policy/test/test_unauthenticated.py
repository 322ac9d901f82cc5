"""The policy's authentication rule: stop needs an authenticated alert unless allowed."""

import pytest

from v2x_common import mappings as m
from v2x_msgs.msg import Alert
from v2x_policy.policy import (
    PATH_LOCAL,
    AlertData,
    AlertReceived,
    PolicySettings,
    State,
    step,
    trusted,
)
from v2x_policy.rules import (
    ACTION_SLOW_DOWN,
    ACTION_STOP,
    DEFAULT_RULE_NAMES,
    DEFAULT_RULES,
    parse_rules,
)
from v2x_protocol import wire

T0 = 1_800_000_000.0
RULES = parse_rules(list(DEFAULT_RULE_NAMES), lambda n: DEFAULT_RULES[n])
STRICT = PolicySettings(rules=RULES)
LENIENT = PolicySettings(rules=RULES, allow_unauthenticated_stop=True)


def _alert(authenticated: bool, cancelled=False, stamp=T0, kind=m.KIND_BLOCKAGE,
           source='denm:77', path=Alert.PATH_RADIO) -> AlertData:
    return AlertData(source_id=source, sequence=3, stamp_ns=round(stamp * 1e9), kind=kind,
                     severity=m.SEVERITY_HIGH, suggest=m.SUGGEST_STOP,
                     detection_time_ns=round(T0 * 1e9),
                     validity_s=60.0, cancelled=cancelled, distance_m=100.0,
                     authenticated=authenticated, path=path)


@pytest.mark.parametrize('authenticated, settings, action, rule', [
    (True, STRICT, ACTION_STOP, 'stop_blockage'),
    (False, STRICT, ACTION_SLOW_DOWN, 'stop_blockage+unauthenticated'),
    (False, LENIENT, ACTION_STOP, 'stop_blockage'),
])
def test_stop_needs_authentication(authenticated, settings, action, rule):
    """A blockage 100 m ahead stops the vehicle only when authenticated (or allowed);
    unauthenticated it slows the vehicle down."""
    state, _ = step(State(), AlertReceived(_alert(authenticated), T0 + 1), settings)
    assert (state.decision.action, state.decision.rule) == (action, rule)


def test_unauthenticated_cannot_cancel_authenticated():
    """An unauthenticated cancellation of the same (source_id, sequence) leaves the
    authenticated alert acting: the two live in separate event-id spaces."""
    state, _ = step(State(), AlertReceived(_alert(True, source='rsu_a'), T0 + 1), STRICT)
    forged = _alert(False, cancelled=True, stamp=T0 + 2, source='rsu_a')
    state, note = step(state, AlertReceived(forged, T0 + 3), STRICT)
    assert note == 'cancel'
    assert state.decision.action == ACTION_STOP and state.decision.source_id == 'rsu_a'


@pytest.mark.parametrize('path, authenticated, is_trusted', [
    (Alert.PATH_DENM, False, False),   # a received DENM
    (Alert.PATH_RADIO, False, False),  # unsigned radio (insecure mode)
    (Alert.PATH_RADIO, True, True),    # verified radio
    (Alert.PATH_LOCAL, False, True),   # produced on this station's own graph
])
def test_trust_rule(path, authenticated, is_trusted):
    """The policy core's trust rule: verified, or produced on this station's graph (path
    local); the path is kept."""
    got = trusted(_alert(authenticated, path=path))
    assert got.authenticated is is_trusted and got.path == path
    assert isinstance(got, wire.AlertData)  # one alert value: the protocol's


def test_local_alert_may_stop_through_step():
    """step applies the trust rule: a blockage published on this station's own graph
    (path local, the message's authenticated flag unset) stops the vehicle, the same
    alert heard as a DENM only slows it down."""
    local, _ = step(State(), AlertReceived(_alert(False, path=Alert.PATH_LOCAL), T0 + 1),
                    STRICT)
    denm, _ = step(State(), AlertReceived(_alert(False, path=Alert.PATH_DENM), T0 + 1),
                   STRICT)
    assert local.decision.action == ACTION_STOP
    assert denm.decision.action == ACTION_SLOW_DOWN


def test_path_local_is_the_message_constant():
    """The core's PATH_LOCAL (it imports no v2x_msgs) is Alert.PATH_LOCAL."""
    assert PATH_LOCAL == Alert.PATH_LOCAL
