"""Image <-> numpy by hand (encoding and step honoured), HazardEvent -> Alert, sequences."""

import json
import math

import numpy as np
import pytest
from sensor_msgs.msg import Image

from v2x_common.files import write_json_atomic
from v2x_common.timeutil import to_seconds
from v2x_detector.conversions import ImageError, Site, bgr_to_image, event_to_alert, image_to_bgr
from v2x_detector.hazard_detector import open_sequences
from v2x_detector.pipeline import seed_event
from v2x_detector.rules import CANCEL, NEW, HazardEvent
from v2x_msgs.msg import Alert


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image whose rows carry pad junk bytes after the pixels."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    if pixels.dtype == np.uint16:
        rows = pixels.astype('>u2' if bigendian else '<u2').reshape(h, w).view(np.uint8)
    data = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    msg = Image()
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.step = data.shape[1]
    msg.is_bigendian = int(bigendian)
    msg.data = data.tobytes()
    return msg


BGR = np.random.default_rng(7).integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding,pixels', [
    ('bgr8', BGR),
    ('rgb8', BGR[:, :, ::-1].copy()),
    ('bgra8', np.dstack([BGR, np.full(BGR.shape[:2], 9, np.uint8)])),
    ('rgba8', np.dstack([BGR[:, :, ::-1], np.full(BGR.shape[:2], 9, np.uint8)])),
])
@pytest.mark.parametrize('pad', [0, 3])
def test_colour_encodings_with_row_padding(encoding, pixels, pad):
    """bgr8/rgb8/bgra8/rgba8 with or without row padding decode to the same BGR pixels."""
    assert np.array_equal(image_to_bgr(make_image(pixels, encoding, pad)), BGR)


def test_mono_encodings():
    """mono8 becomes grey BGR; mono16 (either byte order) is scaled to 8 bits."""
    grey = BGR[:, :, 0]
    out = image_to_bgr(make_image(grey.copy(), 'mono8', pad=1))
    assert np.array_equal(out[:, :, 1], grey) and out.shape == (5, 7, 3)
    deep = grey.astype(np.uint16) * 256 + 17
    for big in (False, True):
        out = image_to_bgr(make_image(deep, 'mono16', pad=2, bigendian=big))
        assert np.array_equal(out[:, :, 2], grey)


@pytest.mark.parametrize('change', [
    {'encoding': 'yuv422_yuy2'},          # not supported
    {'step': 5},                          # shorter than a row
    {'height': 50},                       # more rows than bytes
    {'width': 0},                         # empty
])
def test_bad_images_raise_image_error(change):
    """Unsupported encodings and sizes that do not fit the data raise ImageError."""
    msg = make_image(BGR, 'bgr8')
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError):
        image_to_bgr(msg)


def test_bgr_to_image_round_trip():
    """bgr_to_image -> image_to_bgr gives the pixels back, stamp and frame kept."""
    msg = bgr_to_image(BGR, 1700000000.25, 'cam1')
    assert (msg.encoding, msg.step, msg.header.frame_id) == ('bgr8', 21, 'cam1')
    assert to_seconds(msg.header.stamp) == pytest.approx(1700000000.25)
    assert np.array_equal(image_to_bgr(msg), BGR)


def event(phase=NEW, kind=Alert.KIND_COLLISION):
    return HazardEvent(incident=3, phase=phase, kind=kind, severity=Alert.SEVERITY_MEDIUM,
                       suggest=Alert.SUGGEST_SLOW_DOWN, confidence=0.7,
                       detection_time=1700000000.5, stamp=1700000001.25,
                       box=(0, 0, 10, 10), track_ids=(1, 2), clip_requested=True)


def test_event_to_alert():
    """Every Alert field comes from the event and the site; cancel sets cancelled."""
    site = Site('rsu_detector_07', 48.1, 11.5, 'A9-km12', 600.0, 'cam')
    msg = event_to_alert(event(), 42, site)
    assert (msg.source_id, msg.sequence, msg.kind) == ('rsu_detector_07', 42, Alert.KIND_COLLISION)
    assert (msg.severity, msg.suggest) == (Alert.SEVERITY_MEDIUM, Alert.SUGGEST_SLOW_DOWN)
    assert to_seconds(msg.detection_time) == pytest.approx(1700000000.5)
    assert to_seconds(msg.header.stamp) == pytest.approx(1700000001.25)
    assert (msg.latitude, msg.longitude, msg.road) == (48.1, 11.5, 'A9-km12')
    assert msg.validity_s == pytest.approx(0.75 + 600.0)  # its age plus validity_s
    assert msg.clip_requested and not msg.cancelled
    assert math.isnan(msg.distance_m) and msg.confidence == pytest.approx(0.7)
    assert event_to_alert(event(CANCEL), 42, site).cancelled
    unset = event_to_alert(event(), 1, Site('rsu_detector_07', validity_s=0.0))
    assert unset.validity_s == pytest.approx(0.75 + 600.0)  # DENM's default
    assert math.isnan(unset.latitude) and math.isnan(unset.longitude)


def test_seed_json_event(tmp_path):
    """The seed's JSON fields with our event id; written atomically (no temporary left)."""
    record = seed_event(event(), 9, 'rsu_detector_01', math.nan, 11.5, 'r1', 600.75)
    path = tmp_path / 'e.json'
    write_json_atomic(path, record)
    loaded = json.loads(open(path).read())
    assert loaded['type'] == 'collision' and loaded['severity'] == 'medium'
    assert loaded['ts'] == 1700000000.5 and loaded['clip_hint'] is True
    assert loaded['ts_iso'] == '2023-11-14T22:13:20.500Z'
    assert loaded['lat'] is None and loaded['lon'] == 11.5 and loaded['ttl_s'] == 600.75
    assert loaded['event_id'] == 'rsu_detector_01-9'
    assert [p.name for p in tmp_path.iterdir()] == ['e.json']


def test_sequence_continues_an_older_versions_count(tmp_path):
    """The protocol's SequenceStore takes over the count of sequence_<source_id>.json (the
    detector's file before the stores became one); a corrupt old file is an error."""
    (tmp_path / 'sequence_rsu_01.json').write_text('{"last": 41}')
    store = open_sequences(str(tmp_path), 'rsu/01')
    assert [store.next('rsu/01'), store.next('other')] == [42, 1]
    assert open_sequences(str(tmp_path), 'rsu/01').next('rsu/01') == 43
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'sequence_x.json').write_text('{"last": "x"}')
    with pytest.raises(ValueError, match='corrupt'):
        open_sequences(str(tmp_path / 'bad'), 'x')
