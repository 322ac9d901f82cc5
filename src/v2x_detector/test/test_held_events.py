"""hazard_detector's operator confirmation under real rclpy: held event, service, negatives."""

import csv

import numpy as np
from rclpy.parameter import Parameter

from v2x_common import qos
from v2x_common.mappings import KIND_FIRE
from v2x_detector.hazard_detector import HazardDetector
from v2x_detector.held_events import LABEL_COLUMNS
from v2x_detector.rules import NEW, HazardEvent
from v2x_msgs.msg import Alert, HeldEvent
from v2x_msgs.srv import ResolveHeld


def weak_fire(incident, confidence=0.3):
    return HazardEvent(incident=incident, phase=NEW, kind=KIND_FIRE, severity=2, suggest=1,
                       confidence=confidence, detection_time=1.7e9, stamp=1.7e9 + 1,
                       box=(10.0, 20.0, 60.0, 80.0), track_ids=(), clip_requested=True)


def test_held_event_is_shown_then_dismissed_or_confirmed_through_the_service(ros, tmp_path):
    """Below confirm_fire an event is held (announced with a JPEG, no alert); dismiss keeps
    its frame as a 'none' label, confirm publishes the alert, an unknown id is refused."""
    node = ros.add(HazardDetector(context=ros.context, parameter_overrides=[
        Parameter('backend', value='onnx'), Parameter('state_dir', value=str(tmp_path)),
        Parameter('confirm_fire', value=0.5), Parameter('negatives_max_count', value=1)]))
    got = {'held': [], 'alerts': []}
    peer = ros.node('operator')
    peer.create_subscription(HeldEvent, 'v2x/held_events', got['held'].append,
                             qos.HELD_EVENTS)
    peer.create_subscription(Alert, 'v2x/alert_out', got['alerts'].append, qos.ALERT_OUT)
    client = peer.create_client(ResolveHeld, 'v2x/resolve_held')
    assert ros.spin_until(lambda: client.service_is_ready()
                          and node.alert_pub.get_subscription_count() > 0)
    frame = np.full((120, 160, 3), 90, np.uint8)

    def resolve(hold_id, decision):
        future = client.call_async(ResolveHeld.Request(hold_id=hold_id, decision=decision,
                                                       decided_by='ann'))
        assert ros.spin_until(future.done)
        return future.result()

    for incident in (1, 2, 3):
        node.hold.offer(weak_fire(incident), frame, lambda: frame)
    assert ros.spin_until(lambda: len(got['held']) == 3)
    held = got['held'][0]
    assert held.state == HeldEvent.STATE_HELD and held.alert.kind == KIND_FIRE
    assert bytes(held.jpeg[:2]) == b'\xff\xd8' and list(held.boxes) == [10, 20, 60, 80]
    assert got['alerts'] == []

    for hold in got['held'][:2]:
        assert resolve(hold.hold_id, ResolveHeld.Request.DISMISS).accepted
    answer = resolve(got['held'][0].hold_id, ResolveHeld.Request.CONFIRM)
    assert not answer.accepted and 'already decided: dismissed' in answer.message
    with open(tmp_path / 'negatives' / 'labels.tsv', encoding='utf-8') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    assert list(rows[0]) == list(LABEL_COLUMNS)
    assert [(r['kind'], r['width']) for r in rows] == [('none', '160')]  # retention: 1
    assert (tmp_path / 'negatives' / rows[0]['file']).read_bytes()[:2] == b'\xff\xd8'
    assert rows[0]['file'].endswith(got['held'][1].hold_id + '.jpg')

    assert resolve(got['held'][2].hold_id, ResolveHeld.Request.CONFIRM).accepted
    assert ros.spin_until(lambda: got['alerts'])
    assert got['alerts'][0].kind == KIND_FIRE and got['alerts'][0].sequence == 1
    assert ros.spin_until(lambda: len(got['held']) == 6)
    assert [m.state for m in got['held'][3:]] == [
        HeldEvent.STATE_DISMISSED, HeldEvent.STATE_DISMISSED, HeldEvent.STATE_CONFIRMED]
