"""The detector's optional seed-format JSON events are events event_intake accepts."""

import json
import time

from v2x_detector.pipeline import seed_event
from v2x_detector.rules import CANCEL, NEW, HazardEvent
from v2x_intake.schema import parse_event
from v2x_msgs.msg import Alert


def _event(phase):
    now = time.time()
    return HazardEvent(incident=1, phase=phase, kind=Alert.KIND_FIRE,
                       severity=Alert.SEVERITY_HIGH, suggest=Alert.SUGGEST_STOP,
                       confidence=0.9, detection_time=now - 2.0, stamp=now,
                       box=(0, 0, 10, 10), track_ids=(4,), clip_requested=True)


def test_detector_json_passes_the_intake_schema():
    """A JSON file written by hazard_detector (json_dir) parses as an intake event with the
    same kind, time, ttl and clip hint: the two programs speak the seed's format alike."""
    record = seed_event(_event(NEW), 7, 'rsu_detector_01', 37.5, 127.25, 'segment_A', 600.0)
    doc = json.loads(json.dumps(record))  # as it goes through a file
    parsed = parse_event(doc, now=time.time())
    assert parsed.kind == Alert.KIND_FIRE
    assert abs(parsed.ts - record['ts']) < 1e-6
    assert parsed.validity_s == 600.0 and parsed.clip_requested is True
    assert parsed.event_id == 'rsu_detector_01-7'
    assert parsed.extra['phase'] == 'new'  # our extra fields are kept, not fatal
    cancel = seed_event(_event(CANCEL), 7, 'rsu_detector_01', 37.5, 127.25, 'segment_A', 600.0)
    assert parse_event(json.loads(json.dumps(cancel)), now=time.time()).kind == Alert.KIND_FIRE
