"""Flame-coloured regions followed over every decoded frame (numpy/OpenCV, no ROS).

Colour rule after Chen et al. (2004): red channel bright, R >= G > B, and a saturation that
must be higher the darker the red (S >= (255 - R) * s_min / r_min). Small specks are
removed with a morphological opening; blobs closer than ``merge_px`` (in the scaled frame)
are merged into one region, so one fire is one region and one incident, not one per
flame tongue.

``FlameStage.update(frame, t)`` runs on every decoded frame (also when the model runs at a
lower rate) and follows each region over time. For each it measures, over the last
``window_s``:

- ``flicker``: how much of the region's flame-coloured shape changes from one decoded frame
  to the next (pixels that switched on or off / pixels on in either frame, in the region's
  box, averaged). Flames change shape all the time (0.3-0.6 here); a street lamp, neon
  sign, brake light or orange paint keeps its shape (under 0.15, the rest is compression
  noise);
- ``drift``: how far the region's centre wandered, in its own diagonals (a light riding on
  a vehicle moves with it);
- ``age_s`` and ``present``: how long it has been followed and the fraction of frames it
  was seen in;
- ``growth``: its largest pixel count in the window over its smallest (a fire grows; a lamp
  does not).

The rules (``rules.py``) decide with these and with the tracks: a flame region must last
``fire_persist_s``, flicker, stay in place and not ride on a moving vehicle's box.

Smoke is not detected here: docs/detector.md ("smoke") says why; a site with a smoke
model gives it as ``fire_model``.

A classifier can confirm each region: ``fire_classifier`` 'module:function' (a callable
``f(bgr_crop) -> probability``), or ``fire_model`` an ONNX file checked against
``fire_model_sha256`` (input 1x3xHxW RGB in 0..1, output the probability of fire, or two
scores [no fire, fire]).
"""

from collections import deque
from dataclasses import dataclass
import hashlib
import importlib
from typing import Callable

import cv2
import numpy as np

from v2x_detector.rules import FireRegion

Classifier = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class FireColour:
    """Thresholds of the colour rule and of the region follower."""

    r_min: int = 190
    s_min: int = 60         # saturation (0..255) required at R == r_min
    work_width: int = 320   # the mask is computed on a frame scaled to this width
    min_pixels: int = 12    # blobs smaller than this (in the scaled frame) are noise
    merge_px: int = 6       # blobs closer than this (scaled frame) are one region
    window_s: float = 2.0   # flicker, drift and growth are measured over this span
    forget_s: float = 0.5   # a region unseen this long is forgotten
    lag_s: float = 0.1      # shape change is measured against the mask this long ago


def fire_mask(frame: np.ndarray, colour: FireColour = FireColour()) -> np.ndarray:
    """Boolean mask of flame-coloured pixels of a BGR uint8 frame."""
    b, g, r = (frame[:, :, i].astype(np.int32) for i in range(3))
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = np.where(mx > 0, (mx - mn) * 255 // np.maximum(mx, 1), 0)
    need = (255 - r) * colour.s_min // max(1, 255 - colour.r_min)
    return (r > colour.r_min) & (r >= g) & (g > b) & (sat >= need) & (sat >= 40)


def _scaled(frame: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    h, w = frame.shape[:2]
    scale = min(1.0, width / max(1, w))
    if scale >= 1.0:
        return frame, 1.0
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA), scale


def _components(mask: np.ndarray, colour: FireColour) -> list[tuple[tuple, int]]:
    """Merged regions of an (opened) mask: ((x1, y1, x2, y2), pixels) in mask coordinates."""
    if colour.merge_px > 1:
        k = np.ones((colour.merge_px, colour.merge_px), np.uint8)
        joined = cv2.dilate(mask, k)
    else:
        joined = mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    if n <= 1:
        return []
    counts = np.bincount(labels[mask > 0], minlength=n)
    out = []
    for i in range(1, n):
        if counts[i] < colour.min_pixels:
            continue
        x, y, bw, bh, _ = (int(v) for v in stats[i])
        # the box of the flame pixels themselves (the dilation widened it)
        ys, xs = np.nonzero((labels[y:y + bh, x:x + bw] == i) & (mask[y:y + bh, x:x + bw] > 0))
        out.append(((x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1,
                     y + int(ys.max()) + 1), int(counts[i])))
    return out


def fire_regions(frame: np.ndarray, colour: FireColour = FireColour(),
                 classifier: Classifier | None = None, min_prob: float = 0.5
                 ) -> tuple[FireRegion, ...]:
    """Merged blobs of flame colour in one frame, in the frame's pixels (no time features)."""
    small, scale = _scaled(frame, colour.work_width)
    mask = cv2.morphologyEx(fire_mask(small, colour).astype(np.uint8), cv2.MORPH_OPEN,
                            np.ones((3, 3), np.uint8))
    out = []
    for (x1, y1, x2, y2), pixels in _components(mask, colour):
        box = (x1 / scale, y1 / scale, x2 / scale, y2 / scale)
        score = _confirm(classifier, frame, box)
        if score < min_prob:
            continue
        out.append(FireRegion(box, pixels / (scale * scale), score))
    return tuple(out)


def _confirm(classifier: Classifier | None, frame: np.ndarray, box) -> float:
    if classifier is None:
        return 1.0
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return float(classifier(frame[max(0, y1):y2, max(0, x1):x2]))


@dataclass
class _Followed:
    box: tuple[int, int, int, int]   # scaled-frame pixels
    since: float
    last: float
    samples: deque                   # (t, pixels, cx, cy, diag, change or None)
    score: float = 1.0
    scored_at: float = -1e18
    ident: int = 0


def _overlap(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


class FlameStage:
    """Feed every decoded frame in time order; ``update`` returns the followed regions."""

    def __init__(self, colour: FireColour = FireColour(), classifier: Classifier | None = None,
                 min_prob: float = 0.5, classify_every_s: float = 1.0):
        self.colour = colour
        self.classifier = classifier
        self.min_prob = min_prob
        self.classify_every_s = classify_every_s
        self._masks: deque = deque()
        self._times: deque = deque()
        self._next = 0
        self._followed: list[_Followed] = []
        self.last: tuple[FireRegion, ...] = ()
        self.last_t = -1e18

    def reset(self) -> None:
        """Forget every region (a new stream)."""
        self._masks.clear()
        self._followed, self.last, self.last_t = [], (), -1e18
        self._times.clear()

    def update(self, frame: np.ndarray, t: float) -> tuple[FireRegion, ...]:
        """One decoded BGR frame captured at t -> the regions seen in it, with time features."""
        colour = self.colour
        small, scale = _scaled(frame, colour.work_width)
        mask = cv2.morphologyEx(fire_mask(small, colour).astype(np.uint8), cv2.MORPH_OPEN,
                                np.ones((3, 3), np.uint8))
        # shape change is measured against the mask of about lag_s ago: the same span at
        # any frame rate, and a duplicated frame (TV, a camera repeating frames) is no flicker
        while len(self._masks) > 1 and t - self._masks[1][0] >= colour.lag_s:
            self._masks.popleft()
        prev = self._masks[0][1] if self._masks and self._masks[0][1].shape == mask.shape \
            else None
        self._masks.append((t, mask))
        self.last_t = t
        self._times.append(t)
        while t - self._times[0] > colour.window_s:
            self._times.popleft()
        regions = _components(mask, colour)
        seen_now = []
        for box, pixels in regions:
            best = max(self._followed, key=lambda f: _overlap(f.box, box), default=None)
            if best is None or _overlap(best.box, box) < 0.3:
                self._next += 1
                best = _Followed(box, t, t, deque(), ident=self._next)
                self._followed.append(best)
            elif best.last == t:  # a second region on the same follower: merge them
                box = (min(box[0], best.box[0]), min(box[1], best.box[1]),
                       max(box[2], best.box[2]), max(box[3], best.box[3]))
                pixels += best.samples[-1][1]
                best.samples.pop()
            change = None
            if prev is not None:
                x1, y1, x2, y2 = box
                a, b = mask[y1:y2, x1:x2] > 0, prev[y1:y2, x1:x2] > 0
                union = int(np.count_nonzero(a | b))
                # two-way change: pixels that lit up AND pixels that went out. An exposure
                # drift over warm paint moves the edge one way only; flames do both.
                on, off = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(b & ~a))
                change = 2 * min(on, off) / union if union else None
            best.box, best.last = box, t
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            diag = max(1.0, float(np.hypot(box[2] - box[0], box[3] - box[1])))
            best.samples.append((t, pixels, cx, cy, diag, change))
            if best not in seen_now:
                seen_now.append(best)
        keep = []
        for f in self._followed:
            if t - f.last <= colour.forget_s:
                while f.samples and t - f.samples[0][0] > colour.window_s:
                    f.samples.popleft()
                keep.append(f)
        self._followed = keep
        out = []
        for f in seen_now:
            if self.classifier is not None and t - f.scored_at >= self.classify_every_s:
                f.score, f.scored_at = _confirm(self.classifier, frame, _unscale(f.box, scale)), t
            if f.score < self.min_prob:
                continue
            out.append(self._region(f, scale))
        self.last = tuple(out)
        return self.last

    def _region(self, f: _Followed, scale: float) -> FireRegion:
        s = list(f.samples)
        changes = [c for *_, c in s if c is not None]
        pixels = [p for _, p, *_ in s]
        size = max(d for *_, d, _ in s)
        drift = max(float(np.hypot(x - s[0][2], y - s[0][3])) for _, _, x, y, _, _ in s) / size
        frames = sum(1 for t in self._times if t >= s[0][0])
        present = min(1.0, len(s) / max(1, frames))
        return FireRegion(
            _unscale(f.box, scale), s[-1][1] / (scale * scale), f.score,
            flicker=float(np.median(changes)) if changes else 0.0,
            drift=drift, age_s=f.last - f.since, present=present,
            growth=max(pixels) / max(1, min(pixels)), ident=f.ident)


def _unscale(box, scale):
    return (box[0] / scale, box[1] / scale, box[2] / scale, box[3] / scale)


# ------------------------------------------------------------------------ classifiers
def load_classifier(spec: str) -> Classifier | None:
    """'' -> None; 'package.module:function' -> that callable (ValueError when unusable)."""
    if not spec:
        return None
    module, _, name = spec.partition(':')
    if not module or not name:
        raise ValueError(f'{spec!r} is not module:function')
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f'{spec!r} cannot be loaded: {exc}') from None
    if not callable(fn):
        raise ValueError(f'{spec!r} is not callable')
    return fn


class OnnxFireClassifier:
    """An ONNX fire/smoke classifier: crop -> probability of fire.

    The model takes one RGB image 1x3xHxW in 0..1 (H, W from the model; a dynamic size
    takes ``size``) and returns either one probability or two scores [no fire, fire]
    (softmaxed here when they do not already sum to 1).
    """

    def __init__(self, path: str, sha256: str, size: int = 224):
        if not path:
            raise ValueError('fire_model: no file given')
        if not sha256:
            raise ValueError('fire_model_sha256: required with fire_model (the file is '
                             'checked before it is loaded)')
        try:
            with open(path, 'rb') as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError as exc:
            raise ValueError(f'fire_model: cannot read {path!r}: {exc.strerror}') from None
        if digest != sha256.lower():
            raise ValueError(f'fire_model_sha256: {path!r} has sha256 {digest}, '
                             f'not {sha256.lower()}')
        try:
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
        except ImportError:
            raise ValueError('fire_model: onnxruntime is not installed') from None
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ValueError(f'fire_model: {path!r} cannot be loaded: {exc}') from None
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        if shape is None or len(shape) != 4 or shape[1] not in (3, '3'):
            raise ValueError(f'fire_model: {path!r} must take one 1x3xHxW image, '
                             f'not {[i.shape for i in inputs]}')
        self.input = inputs[0].name
        self.h = shape[2] if isinstance(shape[2], int) else size
        self.w = shape[3] if isinstance(shape[3], int) else size
        try:
            self(np.zeros((8, 8, 3), np.uint8))
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f'fire_model: {path!r} does not answer a 1x3x{self.h}x{self.w} '
                             f'image: {exc}') from None

    def __call__(self, crop: np.ndarray) -> float:
        """Probability of fire in a BGR crop (0 for an empty crop)."""
        if crop.size == 0:
            return 0.0
        rgb = cv2.cvtColor(cv2.resize(crop, (self.w, self.h)), cv2.COLOR_BGR2RGB)
        x = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        out = np.asarray(self.session.run(None, {self.input: x})[0], np.float64).ravel()
        if out.size == 1:
            return float(np.clip(out[0], 0.0, 1.0))
        if out.size != 2:
            raise ValueError(f'fire_model answers {out.size} values; expected 1 or 2')
        if not (np.all(out >= 0) and abs(out.sum() - 1.0) < 1e-3):
            out = np.exp(out - out.max())
            out /= out.sum()
        return float(out[1])
