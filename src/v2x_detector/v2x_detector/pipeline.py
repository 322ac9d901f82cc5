"""Frame in, tracks + fire blobs + hazard events out: the detector without ROS (pure).

Used by the node, by hazard_detector_eval and by bench/bench_detector.py (which also runs
it where there is no ROS).

Which frames the model sees is decided here, from the frames' capture times, never by
what the machine happens to reach: DetectionSchedule picks frames at a steady rate
(detection_rate_hz; 0: every frame). The fire colour stage sees every frame it is given;
on the frames the model skips the rules get ``tracks=None`` (not looked at), so the track
rules advance only on fresh tracks while flicker is measured on every frame.
"""

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from v2x_common.mappings import kind_to_str, severity_to_str
from v2x_common.timeutil import iso
from v2x_detector.camera_motion import GlobalMotion
from v2x_detector.detections import Detection, Track
from v2x_detector.fire import Classifier, FireColour, FlameStage
from v2x_detector.rules import CANCEL, FireRegion, HazardEvent, HazardRules, Observation


class Backend(Protocol):
    """What both detector backends offer."""

    name: str
    names: dict

    def detect(self, frame: np.ndarray) -> list[Detection]: ...

    def track(self, frame: np.ndarray) -> list[Track]: ...

    def reset(self) -> None: ...

    def set_classes(self, ids: frozenset[int] | None) -> None: ...


@dataclass(frozen=True)
class Result:
    """What one frame gave; tracks are the newest the model gave (looked: on this frame)."""

    t: float
    tracks: tuple[Track, ...]
    fire: tuple[FireRegion, ...]
    events: tuple[HazardEvent, ...]
    looked: bool = True


class DetectionSchedule:
    """Which frames the model sees: a steady rate_hz on the frames' capture times.

    A frame is due when its time reaches the next slot of a grid of 1/rate_hz; slots
    advance by whole periods, so a 25 fps camera at 8 Hz gets 8 model frames a second (not
    every 4th frame: 6.25). A jump in time (a gap, a loop, a clock step) restarts the grid
    at that frame. rate_hz 0: every frame. Pure: the same times give the same choice in
    the node and in hazard_detector_eval.
    """

    def __init__(self, rate_hz: float = 0.0):
        if not rate_hz >= 0.0:
            raise ValueError(f'rate_hz {rate_hz}: must be >= 0')
        self.rate_hz = rate_hz
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._next: float | None = None

    def due(self, t: float) -> bool:
        """Whether the model should see the frame captured at t (call once per frame)."""
        if self.period <= 0.0:
            return True
        # a little slack: a frame a hair before its slot (timestamp rounding) counts
        slack = 1e-6
        if self._next is None or t < self._next - self.period - slack \
                or t >= self._next + self.period:
            self._next = t + self.period  # start, or restart after a jump
            return True
        if t + slack >= self._next:
            self._next += self.period
            return True
        return False

    def reset(self) -> None:
        """Start again (a new stream)."""
        self._next = None


class Pipeline:
    """backend.track on the scheduled frames -> fire colour rule -> HazardRules.step."""

    def __init__(self, backend: Backend, rules: HazardRules,
                 fire_colour: FireColour | None = FireColour(),
                 classifier: Classifier | None = None, detection_rate_hz: float = 0.0):
        self.backend = backend
        self.rules = rules
        self.fire_colour = fire_colour
        self.classifier = classifier
        self.schedule = DetectionSchedule(detection_rate_hz)
        self.flames = FlameStage(fire_colour or FireColour(), classifier)
        self.camera = GlobalMotion()
        self.frames = 0
        self.model_frames = 0
        self._tracks: tuple[Track, ...] = ()

    def process(self, image: np.ndarray, t: float) -> Result:
        """Run one BGR frame captured at t (epoch seconds); the model only when it is due."""
        looked = self.schedule.due(t)
        shift = 0.0
        if looked:
            self._tracks = tuple(self.backend.track(image))
            self.model_frames += 1
            shift = self.camera.update(image, t, [tr.box for tr in self._tracks])
        fire = ()
        if self.fire_colour is not None and self.rules.cfg.fire_enabled:
            fire = self.flames.update(image, t)
        h, w = image.shape[:2]
        events = tuple(self.rules.step(
            Observation(t, w, h, self._tracks if looked else None, fire, shift)))
        self.frames += 1
        return Result(t, self._tracks, fire, events, looked)


#: the node's default detection_rate_hz: what a 2-core RSU that also records video
#: sustains with YOLOv8n on its CPU (docs/detector.md, Detection rate)
DETECTION_RATE_HZ = 8.0

_KIND_COLOURS = {1: (0, 0, 255), 2: (0, 140, 255), 3: (255, 0, 255)}


def annotate(image: np.ndarray, result: Result, rules: HazardRules) -> np.ndarray:
    """A copy of the frame with tracks (green), fire blobs (orange) and incidents drawn."""
    out = image.copy()
    for tr in result.tracks:
        x1, y1, x2, y2 = (int(v) for v in tr.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 0), 1)
        cv2.putText(out, f'{tr.name} #{tr.track_id} {tr.conf:.2f}', (x1, max(10, y1 - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 200, 0), 1, cv2.LINE_AA)
    for region in result.fire:
        x1, y1, x2, y2 = (int(v) for v in region.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 165, 255), 1)
    for number, kind, box, alerted in rules.incidents():
        x1, y1, x2, y2 = (int(v) for v in box)
        colour = _KIND_COLOURS.get(kind, (255, 255, 255))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 3 if alerted else 1)
        label = f'{kind_to_str(kind)} {number}' + ('' if alerted else '?')
        cv2.putText(out, label, (x1, min(out.shape[0] - 4, y2 + 14)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2, cv2.LINE_AA)
    return out


def seed_event(event: HazardEvent, sequence: int, source_id: str, latitude: float,
               longitude: float, road: str, validity_s: float) -> dict:
    """The seed's JSON event for one alert version (ts in UNIX epoch seconds as the seed and
    event_intake's schema have it, ttl_s after ts; stamp_iso for people reading the file)."""
    record = {
        'ts': round(event.detection_time, 3),
        'type': kind_to_str(event.kind),
        'severity': severity_to_str(event.severity),
        'lat': None if latitude != latitude else latitude,
        'lon': None if longitude != longitude else longitude,
        'road': road,
        'distance_m': None,
        'clip_hint': event.clip_requested,
        'event_id': f'{source_id}-{sequence}',
        'phase': event.phase,
        'cancelled': event.phase == CANCEL,
        'confidence': round(event.confidence, 3),
        'stamp': round(event.stamp, 3),
        'ts_iso': iso(event.detection_time),
    }
    record['ttl_s'] = validity_s
    return record


BACKENDS = ('ultralytics', 'onnx')


def load_backend(kind: str, model_path: str, imgsz: int = 640, conf: float = 0.25,
                 iou: float = 0.7, device: str = 'cpu', classes: tuple[str, ...] = (),
                 tracker: str = 'bytetrack.yaml') -> Backend:
    """'onnx' (onnxruntime alone) or 'ultralytics' (imported only when asked for).

    classes: names to keep (empty: all); ValueError when the model has no such class.
    """
    if kind == 'onnx':
        from v2x_detector.onnx_backend import OnnxDetector
        backend = OnnxDetector(model_path, imgsz=imgsz, conf=conf, iou=iou, device=device)
    elif kind == 'ultralytics':
        from v2x_detector.ultralytics_backend import UltralyticsDetector
        backend = UltralyticsDetector(model_path, imgsz=imgsz, conf=conf, iou=iou,
                                      device=device, tracker=tracker)
    else:
        raise ValueError(f'unknown backend {kind!r}; expected one of {", ".join(BACKENDS)}')
    backend.set_classes(class_ids(classes, backend.names))
    return backend



def class_ids(wanted: tuple[str, ...], names: dict) -> frozenset[int] | None:
    """Class names -> the model's ids (empty -> None: every class); ValueError if unknown."""
    if not wanted:
        return None
    by_name = {str(v): int(k) for k, v in names.items()}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ValueError(f'unknown classes {unknown} for this model')
    return frozenset(by_name[w] for w in wanted)
