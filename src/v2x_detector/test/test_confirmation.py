"""The operator confirmation gate (pure): hold, confirm, dismiss, timeout, retention."""

import pytest

from v2x_common.mappings import KIND_BLOCKAGE, KIND_COLLISION, KIND_FIRE
from v2x_detector.confirmation import (
    CONFIDENT,
    CONFIRMED,
    DISMISSED,
    DROP,
    DROPPED_AT_TIMEOUT,
    HELD,
    SENT_AT_TIMEOUT,
    WITHDRAWN,
    ConfirmationGate,
    ConfirmSettings,
    Held,
    Publish,
    UnknownHold,
    to_prune,
)
from v2x_detector.rules import CANCEL, NEW, UPDATE, HazardEvent


def event(incident=1, phase=NEW, kind=KIND_FIRE, confidence=0.4, stamp=10.0):
    return HazardEvent(incident=incident, phase=phase, kind=kind, severity=2, suggest=1,
                       confidence=confidence, detection_time=9.0, stamp=stamp,
                       box=(1.0, 2.0, 3.0, 4.0), track_ids=(), clip_requested=True)


def gate(action='broadcast', fire=0.6, collision=0.0):
    return ConfirmationGate(ConfirmSettings({KIND_FIRE: fire, KIND_COLLISION: collision},
                                            timeout_s=30.0, timeout_action=action), 'r-')


def kinds(actions):
    return [(type(a).__name__, getattr(a, 'outcome', None)) for a in actions]


def test_off_by_default_and_confident_events_pass():
    """Threshold 0 publishes everything at once; a confident event of a held kind too."""
    off = ConfirmationGate(ConfirmSettings({}))
    assert not off.settings.enabled
    assert off.offer(event(confidence=0.01), 0.0) == [Publish(event(confidence=0.01))]
    g = gate()
    assert g.offer(event(kind=KIND_COLLISION, confidence=0.1), 0.0) == \
        [Publish(event(kind=KIND_COLLISION, confidence=0.1))]
    assert g.offer(event(confidence=0.6), 0.0) == [Publish(event(confidence=0.6))]


def test_hold_then_confirm_sends_the_latest_version_as_new():
    """A weak event is held; its updates wait with it; confirm sends the newest as new,
    and later versions pass through."""
    g = gate()
    actions = g.offer(event(), 5.0)
    assert isinstance(actions[0], Held)
    hold = actions[0].hold
    assert (hold.hold_id, hold.deadline, hold.threshold) == ('r-1', 35.0, 0.6)
    assert g.offer(event(phase=UPDATE, confidence=0.5, stamp=12.0), 6.0) == []
    assert g.outcome('r-1') == HELD
    out = g.confirm('r-1', 7.0, 'ann')
    assert kinds(out) == [('Resolved', CONFIRMED), ('Publish', None)]
    assert out[0].by == 'ann'
    assert out[1].event == event(confidence=0.5, stamp=12.0)  # phase NEW
    assert g.offer(event(phase=UPDATE), 8.0) == [Publish(event(phase=UPDATE))]
    with pytest.raises(UnknownHold, match='already decided: confirmed'):
        g.confirm('r-1', 9.0)


def test_dismiss_drops_the_incident_and_every_later_version():
    """Dismiss publishes nothing, ever, for that incident; its cancel ends the drop."""
    g = gate()
    g.offer(event(), 0.0)
    assert kinds(g.dismiss('r-1', 1.0, 'bob')) == [('Resolved', DISMISSED)]
    assert g.offer(event(phase=UPDATE, confidence=0.9), 2.0) == []
    assert g.offer(event(phase=CANCEL), 3.0) == []
    assert g.tick(100.0) == []
    with pytest.raises(UnknownHold, match="no held event 'r-9'"):
        g.dismiss('r-9', 4.0)


def test_timeout_broadcast_sends_and_timeout_drop_drops():
    """An undecided event goes out at its deadline (default), or is dropped (drop)."""
    g = gate()
    g.offer(event(), 0.0)
    assert g.tick(29.9) == []
    out = g.tick(30.0)
    assert kinds(out) == [('Resolved', SENT_AT_TIMEOUT), ('Publish', None)]
    d = gate(action=DROP)
    d.offer(event(), 0.0)
    assert kinds(d.tick(31.0)) == [('Resolved', DROPPED_AT_TIMEOUT)]
    assert d.offer(event(phase=UPDATE), 32.0) == []


def test_confident_update_and_cancel_end_a_hold():
    """An update reaching the threshold sends it; a cancel of a held one sends nothing."""
    g = gate()
    g.offer(event(), 0.0)
    assert kinds(g.offer(event(phase=UPDATE, confidence=0.7), 1.0)) == \
        [('Resolved', CONFIDENT), ('Publish', None)]
    g.offer(event(incident=2), 2.0)
    assert kinds(g.offer(event(incident=2, phase=CANCEL), 3.0)) == [('Resolved', WITHDRAWN)]
    assert g.held == []


@pytest.mark.parametrize('settings, bad', [
    (ConfirmSettings({KIND_BLOCKAGE: 1.5}), 'blockage'),   # a threshold is a confidence
    (ConfirmSettings({}, timeout_s=0.0), 'timeout_s'),     # no timeout: a hazard waits
    (ConfirmSettings({}, timeout_action='ask'), 'timeout_action'),
])
def test_bad_settings_are_named(settings, bad):
    """Each impossible setting is named."""
    assert [name for name, _ in settings.problems()] == [bad]


def test_retention_drops_the_oldest_beyond_count_or_bytes():
    """Oldest first beyond either limit; the newest stays however large; 0 = no limit."""
    files = [('a', 10), ('b', 10), ('c', 10), ('d', 10)]
    assert to_prune(files, 2, 0) == ['a', 'b']
    assert to_prune(files, 0, 25) == ['a', 'b']
    assert to_prune(files, 0, 0) == []
    assert to_prune([('a', 10), ('big', 99)], 0, 50) == ['a']
