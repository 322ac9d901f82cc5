"""What camera_health says of real clips, and what it costs per frame beside decoding.

For each clip (bikes.mp4, the demo's scene, and the dev set in ../shared/eval/dev when
present): every frame is decoded once (kept in memory), then judged by CameraHealth at the
clip's own frame times with the node's defaults. Printed per clip: frames and size, the
faults it read with the frame time each was first said, and per frame the CPU
milliseconds of decoding (the baseline, cv2) beside those of the health check, so the
check's share of the work a frame costs anyway is plain. Usage:
  source scripts/env.sh && python bench/bench_camera_health.py [--rounds 3] [clip ...]
"""

import argparse
from pathlib import Path
import statistics
import sys
import tempfile
import time

import cv2

from v2x_detector.assets import sample_path
from v2x_detector.camera_health import CameraHealth, HealthConfig
from v2x_detector.scenes import street_then_collision

DEV = Path(__file__).resolve().parents[2] / 'shared' / 'eval' / 'dev'


def decode(path: str) -> tuple[list, float, float]:
    """(frames, fps, CPU ms per frame of decoding)."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    cpu0 = time.process_time()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cpu = (time.process_time() - cpu0) * 1000.0 / max(1, len(frames))
    cap.release()
    return frames, fps, cpu


def judge(frames: list, fps: float) -> tuple[dict, float]:
    """({reason: first frame time said}, CPU ms per frame of the check)."""
    health = CameraHealth(HealthConfig())
    said: dict[str, float] = {}
    cpu0 = time.process_time()
    for i, frame in enumerate(frames):
        t = i / fps
        reason = health.observe(frame, t, t).reason
        if reason and reason not in said:
            said[reason] = t
    return said, (time.process_time() - cpu0) * 1000.0 / max(1, len(frames))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=3, help='median of this many runs')
    parser.add_argument('clips', nargs='*', help='clips (default: bikes, demo, dev set)')
    args = parser.parse_args(argv)
    clips = list(args.clips)
    tmp = tempfile.TemporaryDirectory()
    if not clips:
        clips = [sample_path('bikes.mp4'), street_then_collision(f'{tmp.name}/demo.mp4')]
        if DEV.is_dir():
            clips += sorted(str(p) for p in DEV.iterdir() if p.suffix in ('.mp4', '.avi'))
        else:
            print(f'# {DEV} absent: the dev set is skipped')
    print(f'{"clip":40} {"frames":>6} {"size":>9} {"decode ms":>9} {"health ms":>9}  '
          'faults said (first frame time)')
    costs = []
    for clip in clips:
        frames, fps, decode_ms = decode(clip)
        if not frames:
            print(f'{Path(clip).name:40} unreadable')
            continue
        runs = [judge(frames, fps) for _ in range(args.rounds)]
        said = runs[0][0]
        health_ms = statistics.median(r[1] for r in runs)
        costs.append(health_ms)
        h, w = frames[0].shape[:2]
        faults = ', '.join(f'{r} at {t:.1f} s' for r, t in said.items()) or 'none'
        print(f'{Path(clip).name[:40]:40} {len(frames):6d} {w:>4}x{h:<4} {decode_ms:9.2f} '
              f'{health_ms:9.2f}  {faults}')
    if costs:
        print(f'# health check: median {statistics.median(costs):.2f} ms, max '
              f'{max(costs):.2f} ms of CPU per frame over {len(costs)} clips')
    tmp.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
