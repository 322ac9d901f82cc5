"""Flame-coloured regions of a frame (pure numpy/OpenCV): the fire rule's per-frame input.

Colour rule after Chen et al. (2004): red channel bright, R >= G > B, and a saturation that
must be higher the darker the red (S >= (255 - R) * s_min / r_min). Small specks are
removed with a morphological opening; each remaining blob is a FireRegion. Flicker over
time is judged by rules.py, not here. A classifier can confirm each blob: any callable
``f(bgr_crop) -> probability`` named as 'module:function' (parameter fire_classifier).
"""

from dataclasses import dataclass
import importlib
from typing import Callable

import cv2
import numpy as np

from v2x_detector.rules import FireRegion

Classifier = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class FireColour:
    """Thresholds of the colour rule."""

    r_min: int = 190
    s_min: int = 60         # saturation (0..255) required at R == r_min
    work_width: int = 320   # the mask is computed on a frame scaled to this width
    min_pixels: int = 12    # blobs smaller than this (in the scaled frame) are noise


def fire_mask(frame: np.ndarray, colour: FireColour = FireColour()) -> np.ndarray:
    """Boolean mask of flame-coloured pixels of a BGR uint8 frame."""
    b, g, r = (frame[:, :, i].astype(np.int32) for i in range(3))
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = np.where(mx > 0, (mx - mn) * 255 // np.maximum(mx, 1), 0)
    need = (255 - r) * colour.s_min // max(1, 255 - colour.r_min)
    return (r > colour.r_min) & (r >= g) & (g > b) & (sat >= need) & (sat >= 40)


def fire_regions(frame: np.ndarray, colour: FireColour = FireColour(),
                 classifier: Classifier | None = None, min_prob: float = 0.5
                 ) -> tuple[FireRegion, ...]:
    """Blobs of flame colour, in the frame's pixels (pixels = their area there)."""
    h, w = frame.shape[:2]
    scale = min(1.0, colour.work_width / max(1, w))
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else frame
    mask = fire_mask(small, colour).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, bw, bh, pixels = (int(v) for v in stats[i])
        if pixels < colour.min_pixels:
            continue
        box = (x / scale, y / scale, (x + bw) / scale, (y + bh) / scale)
        score = 1.0
        if classifier is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            score = float(classifier(frame[y1:y2, x1:x2]))
            if score < min_prob:
                continue
        out.append(FireRegion(box, pixels / (scale * scale), score))
    return tuple(out)


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
