"""Test media from real footage (importable from the detector tests via conftest.py).

The collision scene lives in v2x_detector.scenes (the demo plays it too); flames and the
UDP sender are for the tests only.
"""

import subprocess

import cv2
import numpy as np

from v2x_detector.scenes import bikes_frames, collision_frames  # noqa: F401 (for the tests)
from v2x_detector.sources import read_frames, write_video  # noqa: F401 (for the tests)


def flame_frames(n=40, seed=3):
    """Flickering flame blobs drawn on bikes.mp4's road (frame 10)."""
    road = bikes_frames([10])[10]
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        frame = road.copy()
        for _ in range(6):
            cx, cy = 320 + int(rng.integers(-15, 15)), 170 + int(rng.integers(-10, 10))
            axes = (int(rng.integers(8, 30)), int(rng.integers(15, 55)))
            colour = (int(rng.integers(0, 80)), int(rng.integers(120, 230)), 255)
            cv2.ellipse(frame, (cx, cy), axes, 0, 0, 360, colour, -1)
        frames.append(frame)
    return frames


def udp_sender(port: int, path: str) -> subprocess.Popen:
    """ffmpeg streaming a file at its frame rate, looped, as the recorder's local stream does.

    H.264 in MPEG-TS to udp://127.0.0.1:port, SPS/PPS repeated on key frames (dump_extra), so
    a reader can join at any time.
    """
    return subprocess.Popen(
        ['ffmpeg', '-nostdin', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', path,
         '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '25',
         '-bsf:v', 'dump_extra', '-f', 'mpegts', f'udp://127.0.0.1:{port}?pkt_size=1316'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

