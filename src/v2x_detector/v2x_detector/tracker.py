"""A small IoU tracker for the light (onnxruntime-only) backend: detections in, tracks out.

Greedy matching of each track's predicted box (constant velocity) to same-class detections
by IoU; a track is reported from its first detection and dropped after ``max_age``
frames without one. Enough for the few, large, slow vehicles of a roadside camera.
"""

from dataclasses import dataclass

from v2x_detector.detections import Box, Detection, Track, iou


@dataclass
class _State:
    track_id: int
    box: Box
    velocity: Box
    cls: int
    name: str
    conf: float
    missed: int = 0

    def predicted(self) -> Box:
        return tuple(b + v for b, v in zip(self.box, self.velocity, strict=False))  # type: ignore[return-value]


class IouTracker:
    """Assigns stable ids to detections frame after frame."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 15):
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self._tracks: list[_State] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (new stream)."""
        self._tracks.clear()
        self._next_id = 1

    def update(self, detections: list[Detection]) -> list[Track]:
        """Match this frame's detections; return the tracks seen in this frame."""
        pairs = []
        for ti, state in enumerate(self._tracks):
            pred = state.predicted()
            for di, det in enumerate(detections):
                if det.cls == state.cls:
                    score = iou(pred, det.box)
                    if score >= self.iou_threshold:
                        pairs.append((score, ti, di))
        pairs.sort(reverse=True)
        used_t, used_d, out = set(), set(), []
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            state, det = self._tracks[ti], detections[di]
            velocity = tuple(0.5 * v + 0.5 * (n - o)
                             for v, n, o in zip(state.velocity, det.box, state.box, strict=False))
            state.box, state.velocity, state.conf, state.missed = det.box, velocity, det.conf, 0
            out.append(Track(state.track_id, det.box, det.cls, det.name, det.conf))
        for ti, state in enumerate(self._tracks):
            if ti not in used_t:
                state.missed += 1
                state.box = state.predicted()
        self._tracks = [s for s in self._tracks if s.missed <= self.max_age]
        for di, det in enumerate(detections):
            if di not in used_d:
                state = _State(self._next_id, det.box, (0.0, 0.0, 0.0, 0.0), det.cls, det.name,
                               det.conf)
                self._next_id += 1
                self._tracks.append(state)
                out.append(Track(state.track_id, det.box, det.cls, det.name, det.conf))
        return out
