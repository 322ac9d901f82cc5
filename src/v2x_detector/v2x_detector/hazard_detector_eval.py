"""hazard_detector_eval: the node's own pipeline over labelled clips, scored per kind.

    hazard_detector_eval CLIPS [--labels TSV] [--sites TSV] [--only NAME,...]
        [--launch FILE] [launch_arg:=value ...] [-p param:=value ...]
        [--cache [DIR]] [--json]

CLIPS is a directory of clips (with a labels file: its MANIFEST.tsv, or --labels; without
one every video in it counts as hazard-free footage), or one or more video files
(hazard-free unless a labels file names them; 'sample:bikes.mp4' works).

Parameters are exactly the node's: the launch file (default: the workspace's
launch/rsu.launch.xml, read by scripts/v2x_launch.py as `ros2 launch` reads it, with the
given launch arguments, e.g. detector_backend:=onnx) gives hazard_detector its parameter
files and values, in launch order; then each clip's site columns (lane_polygon,
ground_*), then -p values. A real rclpy node named hazard_detector declares the node's
Param table over them (read_settings: the same checks, a bad value exits 2 naming it) and
make_pipeline builds the same backend, rules and detection schedule the node runs.

Each clip is decoded in order at full speed; each frame goes to the pipeline at the
clip's own timestamp (PTS, as the node's file source gives it). Events are scored by
v2x_detector.evaluation (matching rules there). The real-time factor is seconds of video
per second of wall time (>= 1: keeps up with the camera).

--cache [DIR] keeps the model's output (the tracks of each scheduled frame) per clip, keyed
by the clip's sha256, backend, model sha256, its library's version, our backend code,
imgsz, conf, iou, device, classes, tracker and detection_rate_hz: a second run with other
rule parameters replays the tracks (decoding and the fire stage still run) and gives what
an uncached run gives. Its timings are the replay's, not the model's: it says so.
"""

import argparse
import contextlib
from dataclasses import dataclass, replace
import enum
import hashlib
import importlib.metadata
import json
import math
import os
from pathlib import Path
import sys
import tempfile
import time

from v2x_common.files import sha256_file, write_json_atomic
from v2x_common.mappings import kind_to_str
from v2x_common.params import ParameterError
from v2x_detector import assets, evaluation
from v2x_detector.detections import Track
from v2x_detector.rules import NEW
from v2x_detector.sources import decode

NODE = 'hazard_detector'
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.ts', '.webm', '.m4v')
T0 = 1_700_000_000.0  # epoch of every clip's first frame (the node: start_time + PTS)
CACHE_FORMAT = 1


class Exit(enum.IntEnum):
    """Exit statuses."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2


class EvalError(Exception):
    """An input the tool cannot use (the message says which and how to fix it)."""


# ------------------------------------------------------------------ parameters
def find_launch(given: str = '') -> Path:
    """The launch file: given, else $V2X_WS/launch/rsu.launch.xml, else ./launch/..."""
    if given:
        path = Path(given)
    else:
        ws = os.environ.get('V2X_WS')
        path = Path(ws) / 'launch' / 'rsu.launch.xml' if ws else \
            Path.cwd() / 'launch' / 'rsu.launch.xml'
    if not path.is_file():
        raise EvalError(f'launch file {str(path)!r} not found: pass --launch FILE (the '
                        "workspace's launch/rsu.launch.xml; source scripts/env.sh sets V2X_WS)")
    return path.resolve()


def _launch_module(launch: Path):
    runner = launch.parent.parent / 'scripts' / 'v2x_launch.py'
    if not runner.is_file():
        raise EvalError(f'{runner} not found: the launch file must sit in a workspace '
                        '(launch/ beside scripts/v2x_launch.py)')
    sys.path.insert(0, str(runner.parent))
    try:
        import v2x_launch  # noqa: I001 (found beside the launch file)
    finally:
        sys.path.remove(str(runner.parent))
    return v2x_launch


def node_arguments(launch: Path, launch_args: dict, tmpdir: Path) -> list[str]:
    """The --ros-args ... the launch file gives hazard_detector (its param files and values)."""
    v2x_launch = _launch_module(launch)
    try:
        specs = v2x_launch.Launcher(launch_args).load(launch)
    except v2x_launch.LaunchError as exc:
        raise EvalError(str(exc)) from None
    spec = next((s for s in specs if s.exec == NODE), None)
    if spec is None:
        raise EvalError(f'{launch} starts no {NODE} (enable_detector:=true?)')
    argv = v2x_launch.build_argv(spec, tmpdir, resolve_exec=lambda pkg, exe: exe,
                                 warn=lambda path: None)
    return argv[argv.index('--ros-args'):]


def param_value(text: str, name: str):
    """A -p value, typed as `ros2 run ... -p` types it (YAML)."""
    import yaml
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    if value is None or isinstance(value, dict):
        raise EvalError(f"-p {name}:={text}: not a parameter value (quote a string: \"'...'\")")
    return value


def settings_for(ros_args: list[str], overrides: dict, tmpdir: Path, context=None):
    """The node's Settings: a real node named hazard_detector declares its Param table over
    the launch's arguments plus overrides (last wins); ParameterError names a bad one."""
    from rclpy.node import Node
    import yaml

    from v2x_detector.hazard_detector import read_settings
    args = list(ros_args)
    if overrides:
        fd, path = tempfile.mkstemp(suffix='.yaml', dir=tmpdir)
        with os.fdopen(fd, 'w') as f:
            yaml.safe_dump({'/**': {'ros__parameters': overrides}}, f)
        args += ['--params-file', path]
    node = Node(NODE, cli_args=args, use_global_arguments=False,
                start_parameter_services=False, context=context)
    try:
        return read_settings(node)
    finally:
        node.destroy_node()


# ------------------------------------------------------------------ model outputs
class Recording:
    """Wraps a backend: track() as the backend's, each result kept for the cache."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self.names = backend.names
        self.frames: list[list] = []

    def track(self, frame):
        """The backend's tracks, recorded."""
        tracks = self.backend.track(frame)
        self.frames.append([[t.track_id, *t.box, t.cls, t.name, t.conf] for t in tracks])
        return tracks

    def detect(self, frame):
        """The backend's detections."""
        return self.backend.detect(frame)

    def reset(self) -> None:
        """A new clip."""
        self.backend.reset()

    def set_classes(self, ids) -> None:
        """As the backend."""
        self.backend.set_classes(ids)


class CacheMismatch(RuntimeError):
    """A cached clip whose frame schedule differs from this run's (the cache is redone)."""


class Replay:
    """A backend that gives the recorded tracks, frame after frame, without the model."""

    name = 'replay'
    names: dict = {}

    def __init__(self, frames: list[list]):
        self.frames = frames
        self.used = 0

    def track(self, frame):
        """The next recorded frame's tracks."""
        if self.used >= len(self.frames):
            raise CacheMismatch('more model frames than cached')
        rows = self.frames[self.used]
        self.used += 1
        return [Track(int(r[0]), (float(r[1]), float(r[2]), float(r[3]), float(r[4])),
                      int(r[5]), str(r[6]), float(r[7])) for r in rows]

    def detect(self, frame):
        raise CacheMismatch('a replay has no detect()')

    def reset(self) -> None:
        """Replay from the start."""
        self.used = 0

    def set_classes(self, ids) -> None:
        """Classes were applied when recording."""


def _library_version(backend: str) -> str:
    name = 'ultralytics' if backend == 'ultralytics' else 'onnxruntime'
    try:
        return f'{name} {importlib.metadata.version(name)}'
    except importlib.metadata.PackageNotFoundError:
        return f'{name} ?'


#: our modules that shape a backend's tracks (the onnx backend's tracker is ours)
BACKEND_CODE = {'ultralytics': ('ultralytics_backend.py',),
                'onnx': ('onnx_backend.py', 'tracker.py')}


def _code_sha(backend: str) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in BACKEND_CODE.get(backend, ()):
        digest.update(sha256_file(os.path.join(here, name)).encode())
    return digest.hexdigest()


def model_key(settings, model) -> dict:
    """What decides the model's output on a given clip (the cache key, less the clip): the
    model and its settings, the library and our backend code (a changed tracker.py is a
    new key)."""
    return {'format': CACHE_FORMAT, 'backend': settings.backend,
            'library': _library_version(settings.backend),
            'code_sha256': _code_sha(settings.backend),
            'model_sha256': model.sha256 or sha256_file(model.path),
            'imgsz': settings.imgsz, 'conf': settings.conf, 'iou': settings.iou,
            'device': settings.device, 'classes': list(settings.classes),
            'tracker': settings.tracker, 'detection_rate_hz': settings.detection_rate_hz,
            't0': T0}


def cache_path(cache_dir: str, clip_sha: str, key: dict) -> str:
    """The cache file of one clip under one model key."""
    digest = hashlib.sha256(json.dumps({'clip': clip_sha, **key}, sort_keys=True)
                            .encode()).hexdigest()[:32]
    return os.path.join(cache_dir, f'{clip_sha[:16]}-{digest}.json')


def default_cache_dir() -> str:
    """$XDG_CACHE_HOME/v2x/hazard_detector_eval (else ~/.cache/...): shared by checkouts,
    safe since every file is keyed by all that decides its content."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'v2x', 'hazard_detector_eval')


# ------------------------------------------------------------------ running
@dataclass(frozen=True)
class ClipRun:
    """What one clip gave: new events (clip seconds), counts and timing."""

    events: tuple[evaluation.Detected, ...]
    frames: int
    model_frames: int
    duration_s: float
    wall_s: float
    cached: bool = False
    updates: int = 0
    cancels: int = 0


def run_clip(pipeline, path: str) -> ClipRun:
    """Every frame of the clip through the pipeline at T0 + its PTS, as fast as it goes."""
    pipeline.backend.reset()
    events, updates, cancels, frames, last = [], 0, 0, 0, 0.0
    wall0 = time.perf_counter()
    for image, pts in decode(path):
        result = pipeline.process(image, T0 + pts)
        frames += 1
        last = pts
        for ev in result.events:
            if ev.phase == NEW:
                events.append(evaluation.Detected(kind_to_str(ev.kind), ev.stamp - T0,
                                                  ev.incident, ev.confidence,
                                                  _position(ev.position),
                                                  ev.ground_position))
            elif ev.phase == 'update':
                updates += 1
            else:
                cancels += 1
    wall = time.perf_counter() - wall0
    fps = frames / last if frames > 1 and last > 0 else 25.0
    duration = last + (1.0 / fps if frames else 0.0)
    return ClipRun(tuple(events), frames, pipeline.model_frames, duration, wall,
                   updates=updates, cancels=cancels)


class Runner:
    """Builds the node's pipeline per clip (one backend kept across clips) and runs it,
    through the cache when one is given."""

    def __init__(self, cache_dir: str = ''):
        self.cache_dir = cache_dir
        self._backend = None
        self._backend_key = None

    def _backend_for(self, settings, key):
        from v2x_detector.hazard_detector import make_pipeline
        if self._backend is None or self._backend_key != key:
            self._backend = make_pipeline(settings)[1].backend
            self._backend_key = key
        return self._backend

    def run(self, settings, path: str) -> ClipRun:
        """One clip with these Settings."""
        from v2x_detector.hazard_detector import make_pipeline
        model = make_pipeline(replace(settings, fire_classifier=''), backend=Replay([]))[0]
        key = model_key(settings, model)
        cached = None
        if self.cache_dir:
            cached = cache_path(self.cache_dir, sha256_file(path), key)
            if os.path.isfile(cached):
                with open(cached, encoding='utf-8') as f:
                    replay = Replay(json.load(f)['frames'])
                pipeline = make_pipeline(settings, backend=replay)[1]
                try:
                    run = run_clip(pipeline, path)
                    if replay.used == len(replay.frames):
                        return replace(run, cached=True)
                except CacheMismatch:
                    pass
        backend = self._backend_for(settings, json.dumps(key, sort_keys=True))
        recording = Recording(backend)
        pipeline = make_pipeline(settings, backend=recording)[1]
        run = run_clip(pipeline, path)
        if cached:
            os.makedirs(self.cache_dir, exist_ok=True)
            write_json_atomic(cached, {'key': key, 'clip': os.path.basename(path),
                                       'frames': recording.frames})
        return run


# ------------------------------------------------------------------ the command
def clip_specs(args) -> tuple[str, list[evaluation.ClipSpec]]:
    """(directory the clips are in, the clips to run) from the command line."""
    sites = evaluation.read_sites(args.sites) if args.sites else None
    targets = args.clips
    if len(targets) == 1 and os.path.isdir(targets[0]):
        base = targets[0]
        labels = args.labels or (os.path.join(base, 'MANIFEST.tsv')
                                 if os.path.isfile(os.path.join(base, 'MANIFEST.tsv')) else '')
        if labels:
            specs = evaluation.read_labels(labels, sites)
        else:
            specs = [evaluation.ClipSpec(name, site=tuple(sorted((sites or {})
                                                                  .get(name, {}).items())))
                     for name in sorted(os.listdir(base))
                     if name.lower().endswith(VIDEO_SUFFIXES)]
    else:
        base = ''
        known = {s.file: s for s in evaluation.read_labels(args.labels, sites)} \
            if args.labels else {}
        specs = []
        for target in targets:
            path = assets.resolve_source(target)
            spec = known.get(os.path.basename(path)) or evaluation.ClipSpec(
                path, site=tuple(sorted((sites or {}).get(os.path.basename(path), {})
                                        .items())))
            specs.append(replace(spec, file=path))
    if args.only:
        wanted = [w for w in args.only.split(',') if w]
        specs = [s for s in specs if any(w in os.path.basename(s.file) for w in wanted)]
    for spec in specs:
        path = os.path.join(base, spec.file)
        if not os.path.isfile(path):
            raise EvalError(f'clip {path!r} not found')
    if not specs:
        raise EvalError('no clips to run (a directory of videos, video files, or --only '
                        'matching none?)')
    return base, specs


def parse_args(argv):
    """The command line: launch arguments (name:=value) may stand among the clips."""
    parser = argparse.ArgumentParser(
        prog='hazard_detector_eval', description=__doc__.splitlines()[0],
        epilog='Labels format and matching rules: docs/detector.md (Evaluation).')
    parser.add_argument('clips', nargs='+', help='a directory of clips, or video files; '
                        'name:=value items are launch arguments (detector_backend:=onnx)')
    parser.add_argument('--labels', default='', help='labels TSV (default: CLIPS/MANIFEST.tsv)')
    parser.add_argument('--sites', default='', help='TSV of file + lane_polygon / ground_* '
                                                    'columns: per-clip site settings')
    parser.add_argument('--only', default='', help='run only clips whose name contains one of '
                                                   'these comma-separated parts')
    parser.add_argument('--launch', default='', help='launch file (default: '
                                                     '$V2X_WS/launch/rsu.launch.xml)')
    parser.add_argument('-p', dest='params', action='append', default=[],
                        metavar='NAME:=VALUE', help='a node parameter over the launch values')
    parser.add_argument('--cache', nargs='?', default='', const=default_cache_dir(),
                        metavar='DIR', help="keep/replay the model's tracks per clip here "
                        f'(without DIR: {default_cache_dir()})')
    parser.add_argument('--json', action='store_true', help='one JSON document on stdout')
    args = parser.parse_args(argv)
    args.launch_args, clips = {}, []
    for item in args.clips:
        if ':=' in item and not os.path.exists(item):
            name, _, value = item.partition(':=')
            args.launch_args[name] = value
        else:
            clips.append(item)
    args.clips = clips
    if not clips:
        parser.error('no clips given')
    args.overrides = {}
    for item in args.params:
        name, sep, value = item.partition(':=')
        if not sep or not name:
            parser.error(f'-p {item!r}: expected NAME:=VALUE')
        args.overrides[name] = param_value(value, name)
    return args


def evaluate(args, log=None) -> dict:
    """Run every clip; the report as a dict (what --json prints)."""
    import rclpy
    log = log or (lambda line: None)
    base, specs = clip_specs(args)
    launch = find_launch(args.launch)
    runner = Runner(args.cache)
    verdicts, runs, clips_out = [], [], []
    context = rclpy.Context()  # our own: a caller's rclpy (a test's) is left alone
    rclpy.init(args=[], context=context)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ros_args = node_arguments(launch, args.launch_args, Path(tmp))
            settings = None
            for spec in specs:
                overrides = {**dict(spec.site), **args.overrides}
                settings = settings_for(ros_args, overrides, Path(tmp), context)
                path = os.path.join(base, spec.file)
                run = runner.run(settings, path)
                duration = spec.duration_s if run.frames == 0 else run.duration_s
                verdict = evaluation.match_clip(
                    os.path.basename(spec.file), spec.labels, run.events, duration,
                    settings.rules.blockage_time_s)
                verdicts.append(verdict)
                runs.append(run)
                clips_out.append(_clip_dict(verdict, run, spec))
                for line in evaluation.clip_lines(verdict):
                    log(line)
    finally:
        rclpy.try_shutdown(context=context)
    footage = sum(r.duration_s for r in runs)
    wall = sum(r.wall_s for r in runs)
    frames = sum(r.frames for r in runs)
    scores = evaluation.score(verdicts)
    return {
        'launch': str(launch), 'launch_args': args.launch_args, 'overrides': args.overrides,
        'backend': settings.backend, 'model': settings.model or 'pinned YOLOv8n ONNX',
        'detection_rate_hz': settings.detection_rate_hz,
        'blockage_time_s': settings.rules.blockage_time_s,
        'clips': clips_out,
        'kinds': {k: s.as_dict(footage) for k, s in scores.items()},
        'run': {'clips': len(runs), 'footage_s': footage, 'frames': frames,
                'model_frames': sum(r.model_frames for r in runs), 'wall_s': wall,
                'frames_per_s': frames / wall if wall > 0 else None,
                'realtime_factor': footage / wall if wall > 0 else None,
                'cached_clips': sum(r.cached for r in runs)},
    }


def _position(position) -> tuple[float, float] | None:
    """The event's foot point in 0..1 of the frame; None where the rules give none."""
    if position is None or any(math.isnan(c) for c in position):
        return None
    return (float(position[0]), float(position[1]))


def _clip_dict(verdict, run: ClipRun, spec) -> dict:
    return {
        'file': verdict.file, 'duration_s': run.duration_s, 'site': dict(spec.site),
        'labels': [{'kind': lab.kind, 't': lab.t, 'detected': d is not None, 'delay_s': d}
                   for lab, d in zip(verdict.labels, verdict.delays, strict=True)],
        'events': [{'kind': v.event.kind, 't': round(v.event.t, 3), 'incident': v.event.incident,
                    'confidence': round(v.event.confidence, 3), 'verdict': v.outcome,
                    'position': v.event.position and [round(c, 3) for c in v.event.position],
                    'ground_m': v.event.ground and [round(c, 2) for c in v.event.ground]}
                   for v in verdict.events],
        'false_alarms': len(verdict.false_alarms), 'updates': run.updates,
        'cancels': run.cancels, 'frames': run.frames, 'model_frames': run.model_frames,
        'wall_s': round(run.wall_s, 3), 'cached': run.cached,
    }


def report_lines(report: dict) -> list[str]:
    """The per-kind table and the run's figures, for people."""
    scores = {}
    for kind, d in report['kinds'].items():
        s = evaluation.KindScore(kind, d['labels'], d['detected'], d['false_alarms'])
        if d['median_delay_s'] is not None:
            s.delays = [d['median_delay_s']]
        scores[kind] = s
    run = report['run']
    lines = [''] + evaluation.kind_table(scores, run['footage_s']) + ['']
    cached = run['cached_clips']
    lines.append(
        f'{run["clips"]} clips, {run["footage_s"]:.1f} s of video, {run["frames"]} frames '
        f'({run["model_frames"]} to the model, detection_rate_hz '
        f'{report["detection_rate_hz"]:g}), backend {report["backend"]}: '
        f'{run["frames_per_s"] or 0:.1f} frames/s, real-time factor '
        f'{run["realtime_factor"] or 0:.2f}'
        + (f" ({cached} clip(s) replayed from the cache: not the model's speed)"
           if cached else ''))
    return lines


def main(argv=None, stdout=None, stderr=None) -> int:
    """The command; returns the exit status (2: bad input, named)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    args = parse_args(sys.argv[1:] if argv is None else argv)

    header = [f'{"clip":<44} {"dur s":>6}  {"labels and verdicts":<40} events (new)']

    def log(line):  # each clip's row as it is done (the header before the first)
        while header:
            print(header.pop(), file=stderr if args.json else stdout, flush=True)
        print(line, file=stderr if args.json else stdout, flush=True)
    try:
        # libraries print on stdout (ultralytics' model loading): keep --json's stdout clean
        with contextlib.redirect_stdout(stderr if args.json else stdout):
            report = evaluate(args, log)
    except (EvalError, evaluation.LabelsError, OSError) as exc:
        print(f'hazard_detector_eval: {exc}', file=stderr)
        return Exit.BAD_INPUT
    except ParameterError as exc:
        print(f'hazard_detector_eval: {exc}', file=stderr)
        return Exit.BAD_INPUT
    if args.json:
        print(json.dumps(report, indent=1), file=stdout)
    else:
        for line in report_lines(report):
            print(line, file=stdout)
    return Exit.OK


if __name__ == '__main__':
    sys.exit(main())
