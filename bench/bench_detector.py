"""Frames per second of hazard_detector end to end beside the bare model, same frames, same run.

For each backend (onnx: onnxruntime alone; ultralytics: YOLO + ByteTrack) on bikes.mp4:
  bare      the model's own predict on the decoded frames (backend.detect), nothing else
  pipeline  tracker + fire colour rule + hazard rules + annotation, no ROS (what --no-ros
            runs on a machine without ROS, e.g. a lent GPU)
  node      the hazard_detector node in-process reading the file itself (decode thread,
            worker, Alert and annotated Image publishing with a subscriber attached)
The three run in turns, --rounds times, and the median of each is printed (other work on a
shared machine shifts single runs). The target: node >= 90 % of bare. Usage:
  source scripts/env.sh && python bench/bench_detector.py [--frames 100] [--rounds 3]
      [--backends onnx,ultralytics] [--device cpu] [--no-ros]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

from v2x_detector import assets
from v2x_detector.pipeline import Pipeline, annotate, load_backend
from v2x_detector.rules import HazardRules
from v2x_detector.sources import read_frames, write_video

CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck')


def bare_fps(backend, frames) -> float:
    backend.detect(frames[0])  # warm-up
    t0 = time.perf_counter()
    for frame in frames:
        backend.detect(frame)
    return len(frames) / (time.perf_counter() - t0)


def pipeline_fps(backend, frames) -> float:
    backend.reset()
    pipeline = Pipeline(backend, HazardRules())
    t0 = time.perf_counter()
    for i, frame in enumerate(frames):
        result = pipeline.process(frame, 1000.0 + i / 25)
        annotate(frame, result, pipeline.rules)
    return len(frames) / (time.perf_counter() - t0)


def node_fps(kind: str, path: str, device: str, state_dir: str) -> tuple[float, int]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from v2x_common import qos
    from v2x_detector.hazard_detector import HazardDetector
    from v2x_msgs.msg import Alert

    rclpy.init()
    try:
        params = dict(source=path, realtime=False, backend=kind, device=device,
                      state_dir=state_dir)
        node = HazardDetector(parameter_overrides=[Parameter(k, value=v)
                                                   for k, v in params.items()])
        sink = rclpy.create_node('bench_sink')
        images = []
        sink.create_subscription(Image, 'v2x/detections/image', images.append, qos.SENSOR_DATA)
        sink.create_subscription(Alert, 'v2x/alert_out', lambda m: None, qos.ALERT_OUT)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(sink)
        while not node.finished.is_set():
            executor.spin_once(timeout_sec=0.05)
        fps, frames = node._fps, node.counts['frames']
        executor.shutdown()
        node.destroy_node()
        sink.destroy_node()
        return fps, frames
    finally:
        rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--backends', default='onnx,ultralytics')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-ros', action='store_true', help='bare and pipeline only')
    args = parser.parse_args()
    path = assets.sample_path('bikes.mp4')
    frames = read_frames(path, args.frames)
    if len(frames) < args.frames:  # the node reads the whole file; keep the counts equal
        print(f'bikes.mp4 has {len(frames)} frames', file=sys.stderr)
    if args.frames < 250 and not args.no_ros:
        fd, clip = tempfile.mkstemp(suffix='.mp4')
        os.close(fd)
        path = write_video(clip, frames)
    model = assets.resolve_model().path
    print(f'hazard_detector bench: bikes.mp4, {len(frames)} frames of '
          f'{frames[0].shape[1]}x{frames[0].shape[0]}, device {args.device}, '
          f'{os.cpu_count()} CPUs, model {os.path.basename(model)} (sha256 pinned)')
    print(f'{"backend":<12} {"bare fps":>9} {"pipeline fps":>13} {"node fps":>9} '
          f'{"node/bare":>10}')
    for kind in args.backends.split(','):
        backend = load_backend(kind, model, device=args.device, classes=CLASSES)
        bares, pipes, nodes = [], [], []
        for _ in range(args.rounds):
            bares.append(bare_fps(backend, frames))
            pipes.append(pipeline_fps(backend, frames))
            if not args.no_ros:
                with tempfile.TemporaryDirectory() as state:
                    fps, count = node_fps(kind, path, args.device, state)
                assert count == len(frames), (count, len(frames))
                nodes.append(fps)
        bare, pipe = statistics.median(bares), statistics.median(pipes)
        node = statistics.median(nodes) if nodes else float('nan')
        print(f'{kind:<12} {bare:>9.1f} {pipe:>13.1f} {node:>9.1f} {node / bare:>9.0%}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
