"""The policy's authentication rule: stop needs an authenticated alert unless allowed."""

import pytest

from v2x_common import mappings as m
from v2x_msgs.msg import Alert
from v2x_policy.conversions import alert_from_msg
from v2x_policy.policy import AlertData, AlertReceived, PolicySettings, State, step
from v2x_policy.rules import (
    ACTION_SLOW_DOWN,
    ACTION_STOP,
    DEFAULT_RULE_NAMES,
    DEFAULT_RULES,
    parse_rules,
)

T0 = 1_800_000_000.0
RULES = parse_rules(list(DEFAULT_RULE_NAMES), lambda n: DEFAULT_RULES[n])
STRICT = PolicySettings(rules=RULES)
LENIENT = PolicySettings(rules=RULES, allow_unauthenticated_stop=True)


def _alert(authenticated: bool, cancelled=False, stamp=T0, kind=m.KIND_BLOCKAGE,
           source='denm:77') -> AlertData:
    return AlertData(source_id=source, sequence=3, stamp=stamp, kind=kind,
                     severity=m.SEVERITY_HIGH, suggest=m.SUGGEST_STOP, detection_time=T0,
                     validity_s=60.0, cancelled=cancelled, distance_m=100.0,
                     authenticated=authenticated)


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


@pytest.mark.parametrize('path, authenticated, trusted', [
    (Alert.PATH_DENM, False, False),   # a received DENM
    (Alert.PATH_RADIO, False, False),  # unsigned radio (insecure mode)
    (Alert.PATH_RADIO, True, True),    # verified radio
    (Alert.PATH_LOCAL, False, True),   # produced on this station's own graph
])
def test_conversion_of_trust(path, authenticated, trusted):
    """The message's path and authenticated flag decide what the core trusts."""
    msg = Alert(path=path, authenticated=authenticated)
    assert alert_from_msg(msg).authenticated is trusted
