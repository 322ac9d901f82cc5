"""Frames per second of hazard_detector end to end beside the bare model, same frames, same run.

For each backend (onnx: onnxruntime alone; ultralytics: YOLO + ByteTrack) on bikes.mp4:
  bare      the model's own predict on the decoded frames (backend.detect), nothing else
  pipeline  tracker + fire colour rule + hazard rules + annotation, no ROS (what --no-ros
            runs on a machine without ROS, e.g. a lent GPU)
  node      the hazard_detector node in-process reading the file itself (decode thread,
            worker, Alert and annotated Image publishing with a subscriber attached)
The three run in turns, --rounds times, and the median of each is printed (other work on a
shared machine shifts single runs), as frames per second of wall time and as CPU
milliseconds per frame of the whole process (steadier when others load the machine).
The target: node >= 90 % of bare. Usage:
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


def rates(n: int, wall0: float, cpu0: float) -> tuple[float, float]:
    """(frames per second of wall time, CPU milliseconds of this process per frame)."""
    return (n / (time.perf_counter() - wall0), (time.process_time() - cpu0) * 1000.0 / n)


def bare_fps(backend, frames) -> tuple[float, float]:
    backend.detect(frames[0])  # warm-up
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for frame in frames:
        backend.detect(frame)
    return rates(len(frames), wall0, cpu0)


def pipeline_fps(backend, frames) -> tuple[float, float]:
    backend.reset()
    pipeline = Pipeline(backend, HazardRules())
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, frame in enumerate(frames):
        result = pipeline.process(frame, 1000.0 + i / 25)
        annotate(frame, result, pipeline.rules)
    return rates(len(frames), wall0, cpu0)


def node_fps(kind: str, path: str, device: str, state_dir: str) -> tuple[float, float, int]:
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
        cpu0 = time.process_time()  # the model is loaded; the reader starts with the node
        while not node.finished.is_set():
            executor.spin_once(timeout_sec=0.05)
        frames = node.counts['frames']
        fps, cpu_ms = node._fps, (time.process_time() - cpu0) * 1000.0 / max(1, frames)
        executor.shutdown()
        node.destroy_node()
        sink.destroy_node()
        return fps, cpu_ms, frames
    finally:
        rclpy.try_shutdown()


def median2(pairs) -> tuple[float, float]:
    """Medians of the first and of the second members."""
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


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
          f'{"node/bare":>10}   CPU ms/frame: {"bare":>6} {"pipeline":>9} {"node":>6} '
          f'{"bare/node":>10}')
    for kind in args.backends.split(','):
        backend = load_backend(kind, model, device=args.device, classes=CLASSES)
        bares, pipes, nodes = [], [], []
        for _ in range(args.rounds):
            bares.append(bare_fps(backend, frames))
            pipes.append(pipeline_fps(backend, frames))
            if not args.no_ros:
                with tempfile.TemporaryDirectory() as state:
                    fps, cpu_ms, count = node_fps(kind, path, args.device, state)
                assert count == len(frames), (count, len(frames))
                nodes.append((fps, cpu_ms))
        nan = (float('nan'), float('nan'))
        (bare, bare_cpu), (pipe, pipe_cpu) = median2(bares), median2(pipes)
        node, node_cpu = median2(nodes) if nodes else nan
        print(f'{kind:<12} {bare:>9.1f} {pipe:>13.1f} {node:>9.1f} {node / bare:>9.0%}   '
              f'{"":>13} {bare_cpu:>6.1f} {pipe_cpu:>9.1f} {node_cpu:>6.1f} '
              f'{bare_cpu / node_cpu:>9.0%}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
