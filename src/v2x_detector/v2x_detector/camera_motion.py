"""How far the whole image moved between two frames: the guard against a moving camera.

A hand-held phone, a PTZ camera that pans, a TV camera, a shaken mast: the tracks then move
because the camera does, and every motion cue of the collision rule would lie. The global
shift between two consecutive analysed frames is measured by phase correlation
(``cv2.phaseCorrelate``) of the nine tiles of a 3x3 grid over 160-pixel-wide grey copies
(Hanning window), median over the tiles, after the
boxes of the tracked objects (this frame's and the previous one's) are blanked in both:
a big vehicle crossing a bare road must not read as the camera moving. A response below
``min_response`` (a scene cut, nothing in common) reads as "moved" too. About 1 ms per
model frame here. Pure (numpy/OpenCV), no ROS.
"""

import math

import cv2
import numpy as np

WORK_WIDTH = 160


class GlobalMotion:
    """update(frame, t) -> image shift since the previous frame in frame diagonals/s."""

    def __init__(self, min_response: float = 0.05):
        self.min_response = min_response
        self._prev: np.ndarray | None = None
        self._prev_boxes: list = []
        self._prev_t = 0.0
        self._window: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (a new stream)."""
        self._prev = None

    def update(self, frame: np.ndarray, t: float, boxes=()) -> float:
        """Shift since the previous frame; boxes: the tracked objects' (x1, y1, x2, y2)
        in frame pixels, left out. 0.0 for the first frame; math.inf after a cut."""
        h, w = frame.shape[:2]
        size = (WORK_WIDTH, max(8, round(h * WORK_WIDTH / max(1, w))))
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        scale = size[0] / max(1, w)
        scaled = [tuple(int(round(v * scale)) for v in b) for b in boxes]
        prev, prev_t, prev_boxes = self._prev, self._prev_t, self._prev_boxes
        self._prev, self._prev_t, self._prev_boxes = small, t, scaled
        if prev is None or prev.shape != small.shape or t <= prev_t:
            return 0.0
        if scaled or prev_boxes:
            a, b = prev.copy(), small.copy()
            for x1, y1, x2, y2 in scaled + prev_boxes:
                a[max(0, y1):y2, max(0, x1):x2] = float(a.mean())
                b[max(0, y1):y2, max(0, x1):x2] = float(b.mean())
            prev, small = a, b
        # one shift per tile of a 3x3 grid, then the median: the camera moves every tile,
        # a vehicle only the tiles it crosses
        th, tw = small.shape[0] // 3, small.shape[1] // 3
        if self._window is None or self._window.shape != (th, tw):
            self._window = cv2.createHanningWindow((tw, th), cv2.CV_32F)
        shifts, responses = [], []
        for r in range(3):
            for c in range(3):
                a = prev[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
                b = small[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
                (dx, dy), response = cv2.phaseCorrelate(a, b, self._window)
                shifts.append((dx, dy))
                responses.append(response)
        if max(responses) < self.min_response and float(np.std(small)) > 8.0:
            return math.inf
        dx = float(np.median([d[0] for d in shifts]))
        dy = float(np.median([d[1] for d in shifts]))
        return math.hypot(dx, dy) / math.hypot(*size) / (t - prev_t)
