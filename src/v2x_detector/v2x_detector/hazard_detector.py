"""hazard_detector: YOLO + tracker on road video; collisions, fires, blockages as Alerts.

Publishes v2x/alert_out (Alert, its own source_id and persisted sequence; updates keep
the sequence with a newer header stamp, a cancellation sets cancelled) and
v2x/detections/image (annotated bgr8 frames). Reads frames from the ``source`` parameter
(a file, 'sample:bikes.mp4', an rtsp:// or udp:// URL) or, when it is empty, from the
sensor_msgs/Image topic 'image_raw'. The model runs on a worker thread; the executor only
serves parameters, the image subscription and diagnostics.
"""

from dataclasses import dataclass, fields
import functools
import json
import math
import os
import re
import sys
import threading
import time

import cv2
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.files import write_json_atomic
from v2x_common.mappings import kind_to_str, severity_to_str
from v2x_common.node_main import run_node
from v2x_common.params import (
    DOUBLE_ARRAY,
    Param,
    ParameterError,
    check,
    declare_parameters,
    defaults,
    ge,
    gt,
    not_empty,
    one_of,
)
from v2x_common.recent import RecentEvents
from v2x_common.redact import redact_url
from v2x_common.timeutil import is_zero, to_seconds
from v2x_common.worker import Worker, exit_node
from v2x_detector import assets
from v2x_detector.camera_health import FROZEN, CameraHealth, HealthConfig
from v2x_detector.conversions import (
    ImageError,
    Site,
    bgr_to_image,
    event_to_alert,
    image_to_bgr,
    validity_for,
)
from v2x_detector.detections import BackendError
from v2x_detector.fire import FireColour, OnnxFireClassifier, load_classifier
from v2x_detector.held_events import CONFIRM_PARAMETERS, OperatorHold
from v2x_detector.pipeline import (
    BACKENDS,
    DETECTION_RATE_HZ,
    Pipeline,
    annotate,
    load_backend,
    seed_event,
)
from v2x_detector.rules import CANCEL, HazardRules, RuleConfig
from v2x_detector.sources import Frame, FrameQueue, VideoSource, is_stream
from v2x_msgs.msg import Alert
from v2x_protocol.io.state import SequenceStore

NODE_NAME = 'hazard_detector'
DEFAULT_CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck')
INTAKE_DIR = '/opt/v2x/events'  # event_intake's directory: never ours (ARCHITECTURE.md)
HEALTH_WINDOW_S = 60.0  # diagnostics judge the errors of this last stretch
#: Frames decoded but not yet processed; a worker this far behind drops the oldest
QUEUE_FRAMES = 16


def _device(value: str) -> str | None:
    return None if value == 'cpu' or value.startswith('cuda') else \
        f'{value!r}: expected cpu or cuda:N'


def _imgsz(value: int) -> str | None:
    return None if 32 <= value <= 4096 and not value % 32 else \
        f'{value}: a multiple of 32 in 32..4096'


def _json_dir(value: str) -> str | None:
    if value and os.path.realpath(value) == os.path.realpath(INTAKE_DIR):
        return f"{INTAKE_DIR} is event_intake's directory"
    return None


def _open_unit(value: float) -> str | None:
    return None if 0.0 < value < 1.0 else f'{value}: must lie in (0, 1)'


_SOURCE_ID = check('1..64 characters',
                   lambda v: None if 0 < len(v) <= 64 else 'must be 1..64 characters')
#: The node's own parameters (the rules' follow, from RuleConfig).
NODE_PARAMETERS = (
    Param('source', '', "video file, 'sample:bikes.mp4', rtsp:// or udp:// URL; "
                        'empty: the topic image_raw'),
    Param('realtime', True, 'read a file at its frame rate; false: every frame, as fast as '
                            'the worker takes them'),
    Param('loop', False, 'restart a file at its end (demo; ignored for streams and topics)'),
    Param('start_time', 0.0, "epoch seconds of a file's first frame; 0: from seg_<epoch> or now"),
    Param('exit_at_end', False, 'stop the node when a file ends'),
    Param('backend', 'ultralytics', 'ultralytics (YOLO + ByteTrack) or onnx (onnxruntime alone)',
          one_of(*BACKENDS)),
    Param('model', '', 'model file (.onnx, .pt, .engine); empty: the pinned YOLOv8n ONNX'),
    Param('model_sha256', '',
          'expected sha256 of model (checked when set; the default is pinned)'),
    Param('device', 'cpu', 'cpu or cuda:N', check('cpu or cuda:N', _device)),
    Param('imgsz', 640, 'network input size in pixels (a fixed-shape ONNX takes only its own)',
          check('a multiple of 32 in 32..4096', _imgsz)),
    Param('conf', 0.25, 'minimum detection confidence', check('in (0, 1)', _open_unit)),
    Param('iou', 0.7, 'NMS IoU threshold', check('in (0, 1)', _open_unit)),
    Param('detection_rate_hz', DETECTION_RATE_HZ,
          'frames per second the model sees, steady, chosen by capture time (the fire colour '
          'stage sees every frame); 0: every frame', ge(0.0)),
    Param('classes', list(DEFAULT_CLASSES), 'class names to detect; empty: all'),
    Param('tracker', 'bytetrack.yaml', 'ultralytics tracker configuration'),
    Param('fire_classifier', '', 'module:function(bgr_crop) -> probability confirming fire blobs'),
    Param('fire_model', '', 'ONNX fire classifier confirming fire regions; empty: none'),
    Param('fire_model_sha256', '', 'sha256 of fire_model (required with it)'),
    Param('source_id', 'rsu_detector_01', 'our station id in every Alert', _SOURCE_ID),
    Param('state_dir', '/var/lib/v2x/hazard_detector', 'where the alert sequence is persisted',
          not_empty),
    Param('json_dir', '', "also write each alert as the seed's JSON event here; empty: off",
          check("not event_intake's directory", _json_dir)),
    Param('latitude', math.nan, 'camera site latitude, WGS84 degrees'),
    Param('longitude', math.nan, 'camera site longitude, WGS84 degrees'),
    Param('road', '', 'road segment id'),
    Param('validity_s', 0.0, 'each alert version stays valid this long after its stamp; '
                             '0: 600 s', ge(0.0)),
    Param('frame_id', 'camera', 'frame_id of alerts and annotated images'),
    Param('publish_image', True, 'publish annotated frames on v2x/detections/image'),
    Param('image_every', 1, 'publish every n-th annotated frame', ge(1)),
    Param('camera_health', True, 'judge the frames: frozen, dark, washed out, covered, '
          'blurred, moved, silent -> diagnostics ERROR (docs/detector.md)'),
    Param('camera_hold_s', 3.0, 'a camera fault must last this long before it is said (s)',
          gt(0.0)),
    Param('camera_frozen_s', 5.0, 'identical frames this long: frozen (s)', gt(0.0)),
    Param('camera_silent_s', 5.0, 'no frame this long: silent (s)', gt(0.0)),
)

_RULE_DESCRIPTIONS = {
    'confirm_s': 'evidence must last this long before the first alert (s)',
    'gap_s': 'a candidate survives evidence gaps this short (s)',
    'clear_s': 'an incident without evidence this long is cancelled (s)',
    'cooldown_s': 'no new incident of the same kind over a cancelled one for this long (s)',
    'update_interval_s': 'at most one update per incident this often (s)',
    'update_growth': 'an update when the box area grew by this fraction',
    'speed_span_s': 'image-plane speeds are measured over this span (s)',
    'max_jump': 'a centre jump over this many box diagonals in one frame is not motion',
    'severity_large_area': 'box area / frame area that raises severity by one',
    'severity_long_s': 'incident duration that raises severity by one (s)',
    'collision_classes': 'classes that can collide',
    'collision_touch': 'gap / smaller box diagonal that counts as touching',
    'collision_min_speed': 'box diagonals/s one vehicle had just before the impact',
    'collision_stop_speed': 'box diagonals/s both vehicles are below after the impact',
    'collision_drop_window_s': 'the drop from min_speed to stop_speed happens within (s)',
    'collision_stitch_s': 'a new track where a vehicle was lost this recently inherits its '
                          'speeds (s)',
    'collision_partner_speed': 'box diagonals/s a neighbour stopping with it had before',
    'collision_min_size': 'box diagonal / frame diagonal of a vehicle whose stop counts',
    'collision_min_speed_mps': 'with ground_points: m/s one vehicle had just before the '
                               'impact',
    'collision_stop_speed_mps': 'with ground_points: m/s it is below after the impact',
    'collision_partner_speed_mps': 'with ground_points: m/s a neighbour stopping with it '
                                   'had before',
    'camera_motion': 'frame diagonals/s of global image shift (two model frames in a row) '
                     'that mean the camera moves',
    'camera_settle_s': 'motion cues count again this long after the camera last moved (s)',
    'fire_enabled': 'run the fire rule',
    'fire_persist_s': 'a flame region must be followed this long (s)',
    'fire_min_area': 'region pixels / frame pixels',
    'fire_flicker': 'median two-way share of the region shape that changes in 0.1 s',
    'fire_max_drift': 'region diagonals its centre may wander in 2 s',
    'fire_min_present': 'share of the decoded frames the region must be seen in',
    'fire_vehicle_speed': 'a region inside a vehicle moving faster (diagonals/s) is no fire',
    'blockage_classes': 'classes that can block a lane',
    'blockage_time_s': 'standing still in the lane this long is a blockage (s)',
    'blockage_speed': 'box diagonals/s below which an object stands still',
    'blockage_memory_s': 'a standing object unseen this long is forgotten (s)',
    'lane_polygon': 'x1,y1,x2,y2,... in 0..1 of the frame; empty: blockage off',
    'ground_points': 'ground calibration, u1,v1,x1,y1,... of four points: image (0..1 of '
                     'the frame) to metres on the road; empty: none (docs/detector.md)',
}


def _rule_row(f) -> Param:
    value = list(f.default) if isinstance(f.default, tuple) else f.default
    return Param(f.name, value, _RULE_DESCRIPTIONS[f.name],
                 type=DOUBLE_ARRAY if value == [] else '')


#: Every parameter: the node's own, then the rules' (defaults from RuleConfig; its
#: problems() checks the combinations).
PARAMETERS = (NODE_PARAMETERS + tuple(_rule_row(f) for f in fields(RuleConfig))
              + CONFIRM_PARAMETERS)


def parameter_defaults() -> dict:
    """Every parameter the node declares, with its default (node's own, then the rules')."""
    return defaults(PARAMETERS)


@dataclass(frozen=True)
class Settings:
    """The node's parameters, read once and checked."""

    source: str
    realtime: bool
    loop: bool
    start_time: float
    exit_at_end: bool
    backend: str
    model: str
    model_sha256: str
    device: str
    imgsz: int
    conf: float
    iou: float
    detection_rate_hz: float
    classes: tuple[str, ...]
    tracker: str
    fire_classifier: str
    site: Site
    fire_model: str
    fire_model_sha256: str
    state_dir: str
    json_dir: str
    publish_image: bool
    image_every: int
    rules: RuleConfig
    camera: HealthConfig | None  # None: camera_health off


def read_settings(node: Node) -> Settings:
    """Declare the parameters, read them once -> Settings; raises ParameterError naming the
    first bad one."""
    p = declare_parameters(node, PARAMETERS)
    rule_values = {}
    for f in fields(RuleConfig):
        value = p[f.name]
        rule_values[f.name] = tuple(value or ()) if isinstance(f.default, tuple) else value
    rules = RuleConfig(**rule_values)
    for name, reason in rules.problems():
        raise ParameterError(name, reason)
    site = Site(p['source_id'], p['latitude'], p['longitude'], p['road'], p['validity_s'],
                p['frame_id'])
    return Settings(
        source=p['source'], realtime=p['realtime'], loop=p['loop'], start_time=p['start_time'],
        exit_at_end=p['exit_at_end'], backend=p['backend'], model=p['model'],
        model_sha256=p['model_sha256'], device=p['device'], imgsz=p['imgsz'], conf=p['conf'],
        iou=p['iou'], detection_rate_hz=p['detection_rate_hz'],
        classes=tuple(p['classes'] or ()), tracker=p['tracker'],
        fire_classifier=p['fire_classifier'], fire_model=p['fire_model'],
        fire_model_sha256=p['fire_model_sha256'], site=site, state_dir=p['state_dir'],
        json_dir=p['json_dir'], publish_image=p['publish_image'],
        image_every=p['image_every'], rules=rules,
        camera=HealthConfig(hold_s=p['camera_hold_s'], frozen_s=p['camera_frozen_s'],
                            silent_s=p['camera_silent_s']) if p['camera_health'] else None)


def open_sequences(state_dir: str, source_id: str) -> SequenceStore:
    """The protocol's SequenceStore in state_dir (block 1: each number is stored before it
    is used). The count of an older version's sequence_<source_id>.json carries over."""
    path = os.path.join(state_dir, SequenceStore.FILE)
    legacy = os.path.join(state_dir, 'sequence_%s.json' % (
        re.sub(r'[^A-Za-z0-9_.-]', '_', source_id) or 'default'))
    if not os.path.exists(path) and os.path.exists(legacy):
        try:
            with open(legacy, encoding='utf-8') as f:
                last = int(json.load(f)['last'])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f'{legacy} is corrupt: {exc}') from None
        write_json_atomic(path, {source_id: last})
    return SequenceStore(state_dir, block=1)


def make_pipeline(s: Settings, backend=None) -> tuple:
    """(model asset, Pipeline) as the node runs it: its classifier, model, backend, rules
    and detection schedule from Settings; ParameterError names what cannot be used.
    backend: a ready one to use instead of loading the model (hazard_detector_eval's cache
    replays one)."""
    try:
        classifier = load_classifier(s.fire_classifier)
    except ValueError as exc:
        raise ParameterError('fire_classifier', str(exc)) from None
    if s.fire_model and classifier is not None:
        raise ParameterError('fire_model', 'give fire_model or fire_classifier, not both')
    if s.fire_model or s.fire_model_sha256:
        try:
            classifier = OnnxFireClassifier(s.fire_model, s.fire_model_sha256)
        except ValueError as exc:
            name, _, reason = str(exc).partition(': ')
            raise ParameterError(name, reason) from None
    try:
        model = assets.resolve_model(s.model, s.model_sha256)
    except assets.AssetError as exc:
        raise ParameterError('model' if s.model else 'model_sha256', str(exc)) from None
    if backend is None:
        try:
            backend = load_backend(s.backend, model.path, s.imgsz, s.conf, s.iou, s.device,
                                   s.classes, s.tracker)
        except BackendError as exc:
            raise ParameterError(str(exc).split(' ', 1)[0], str(exc)) from None
        except ValueError as exc:
            raise ParameterError('classes', str(exc)) from None
        except ImportError as exc:
            raise ParameterError('backend', f'{s.backend} is not installed: {exc}') from None
    pipeline = Pipeline(backend, HazardRules(s.rules), FireColour(), classifier,
                        detection_rate_hz=s.detection_rate_hz)
    return model, pipeline


class HazardDetector(Node):
    """The node: frames -> Pipeline -> Alerts and annotated images."""

    def __init__(self, **kwargs):
        self.exit_code = None  # set when the worker dies: node_main exits 1 (systemd restarts)
        self.video = self.slot = self._worker = None  # destroy_node works after a failed start
        super().__init__(NODE_NAME, **kwargs)
        self.settings = s = read_settings(self)
        self.model, self.pipeline = make_pipeline(s)
        self.rules = self.pipeline.rules
        try:
            self.sequences = open_sequences(s.state_dir, s.site.source_id)
        except (OSError, ValueError) as exc:
            raise ParameterError('state_dir', str(exc)) from None
        self.alert_pub = self.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
        self.image_pub = (self.create_publisher(Image, 'v2x/detections/image', qos.SENSOR_DATA)
                          if s.publish_image else None)
        self._sequence_of: dict[int, int] = {}
        # Operator confirmation (off unless a confirm_<kind> threshold is set): every event
        # goes through it; v2x/held_events, v2x/resolve_held.
        self.hold = OperatorHold(self, self._publish_event, s.site, s.state_dir)
        self.counts = {'frames': 0, 'alerts': 0, 'updates': 0, 'cancels': 0,
                       'bad_images': 0, 'frame_errors': 0, 'json_errors': 0}
        # Health looks at the last HEALTH_WINDOW_S, not at lifetime counts.
        self.recent_input_errors = RecentEvents(HEALTH_WINDOW_S)
        self.recent_publish_errors = RecentEvents(HEALTH_WINDOW_S)
        self._fps = 0.0
        self.finished = threading.Event()
        lossless = bool(s.source) and not s.realtime
        self.slot = FrameQueue(QUEUE_FRAMES, lossless=lossless)
        self.video = None
        if s.source:
            try:
                source = assets.resolve_source(s.source)
            except assets.AssetError as exc:
                raise ParameterError('source', str(exc)) from None
            if not is_stream(source) and not os.path.isfile(source.removeprefix('file://')):
                raise ParameterError('source', f'no such file {source!r}')
            self.video = VideoSource(source, self.slot, realtime=s.realtime, loop=s.loop,
                                     start_time=s.start_time)
        else:
            self.create_subscription(Image, 'image_raw', self._on_image, qos.SENSOR_DATA)
        self.camera = CameraHealth(s.camera, time.monotonic()) if s.camera else None
        if self.camera is not None:
            self.create_service(Trigger, '~/retake_reference', self._on_retake_reference)
        self.diag = Diagnostics(self, status_fn=self._health)
        # A worker that dies (an unexpected exception escaping _work) ends the node with
        # status 1 and shows as ERROR meanwhile: never a node that looks alive but detects
        # nothing. It may finish: a file source read to its end.
        self._worker = Worker('detector', self._work, logger=self.get_logger(),
                              may_finish=True, wake=self.slot.close,
                              on_death=functools.partial(exit_node, self))
        self._worker.start()
        if self.video is not None:
            self.video.start()
        self.get_logger().info(
            f'{s.backend} backend, model {self.model.path} on {s.device}, source '
            f'{redact_url(s.source) or "topic image_raw"}, source_id {s.site.source_id}')

    # ------------------------------------------------------------------ input
    def _on_image(self, msg: Image) -> None:
        try:
            image = image_to_bgr(msg)
        except ImageError as exc:
            self.counts['bad_images'] += 1
            self.recent_input_errors.add(str(exc))
            self.get_logger().warning(f'image dropped: {exc}', throttle_duration_sec=5.0)
            return
        t = to_seconds(msg.header.stamp) if not is_zero(msg.header.stamp) else time.time()
        self.slot.put(Frame(image, t, self.counts['frames']))

    # ------------------------------------------------------------------ work
    def _work(self) -> None:
        started = None
        while not self._worker.stopping.is_set():
            frame = self.slot.get(timeout=0.2)
            if frame is None:
                if self.video is not None and self.video.finished.is_set():
                    frame = self.slot.get(timeout=0.0)
                    if frame is None:
                        self.finished.set()
                        return
                else:
                    continue
            started = started or time.monotonic()
            # A frozen picture is no new evidence: it is judged, not detected on.
            if self.camera is not None and \
                    self.camera.observe(frame.image, frame.t, time.monotonic()).reason == FROZEN:
                continue
            try:
                result = self.pipeline.process(frame.image, frame.t)
            except (cv2.error, RuntimeError, ValueError) as exc:
                self._input_error(f'frame {frame.index} dropped: {exc}')
                continue
            except Exception as exc:  # noqa: B902 -- a backend surprise costs one frame
                self._input_error(f'frame {frame.index} failed: {exc!r}')
                continue
            self.counts['frames'] += 1
            elapsed = time.monotonic() - started
            self._fps = self.counts['frames'] / elapsed if elapsed > 0 else 0.0
            try:
                self._publish(frame, result)
            except Exception as exc:  # noqa: B902 -- rclpy's RCLError once the context is down
                if not self.context.ok():
                    return  # Ctrl-C or an external shutdown: the node is going away
                # One failed publish (a full disk for the JSON event, ...) costs that frame's
                # output, counted and shown (ERROR), never the worker.
                self.recent_publish_errors.add(f'{type(exc).__name__}: {exc}')
                self.get_logger().error(f'publishing frame {frame.index} failed: {exc!r}',
                                        throttle_duration_sec=5.0)

    def _input_error(self, what: str) -> None:
        self.counts['frame_errors'] += 1
        self.recent_input_errors.add(what)
        self.get_logger().warning(what, throttle_duration_sec=5.0)

    def _publish(self, frame: Frame, result) -> None:
        for event in result.events:
            self.hold.offer(event, frame.image, lambda: annotate(frame.image, result, self.rules))
        every = self.settings.image_every
        if (self.image_pub is not None and self.counts['frames'] % every == 0
                and self.image_pub.get_subscription_count() > 0):
            drawn = annotate(frame.image, result, self.rules)
            self.image_pub.publish(bgr_to_image(drawn, frame.t, self.settings.site.frame_id))

    def _publish_event(self, event) -> None:
        sequence = self._sequence_of.get(event.incident)
        if sequence is None and event.phase != CANCEL:
            # A new incident, or one whose alert was held back (its sequence could not be
            # stored): it goes out now, as soon as a sequence is safely on disk.
            try:
                sequence = self.sequences.next(self.settings.site.source_id)
            except (OSError, ValueError) as exc:  # a full disk; a state file unreadable
                self.recent_publish_errors.add(
                    f'cannot store the alert sequence in {self.sequences.path}: {exc}')
                self.get_logger().error(
                    f'{kind_to_str(event.kind)} alert held back: cannot store its sequence '
                    f'in {self.sequences.path} ({exc}); retried with the '
                    "incident's next update", throttle_duration_sec=5.0)
                return
            self._sequence_of[event.incident] = sequence
            self.counts['alerts'] += 1
            self.get_logger().info(
                f'alert {sequence}: {kind_to_str(event.kind)}, severity '
                f'{severity_to_str(event.severity)}, confidence {event.confidence:.2f}, '
                f'tracks {list(event.track_ids)}, at {event.position[0]:.2f},'
                f'{event.position[1]:.2f} of the frame (the bottom centre of its box)'
                + (f', {event.ground_position[0]:.1f},{event.ground_position[1]:.1f} m on '
                   'the ground' if event.ground_position else ''))
        elif sequence is None:
            return  # a cancellation of an incident whose alert never went out
        else:
            self.counts['cancels' if event.phase == CANCEL else 'updates'] += 1
            if event.phase == CANCEL:
                del self._sequence_of[event.incident]
                self.get_logger().info(f'alert {sequence} cancelled')
        self.alert_pub.publish(event_to_alert(event, sequence, self.settings.site))
        if self.settings.json_dir:
            site = self.settings.site
            record = seed_event(event, sequence, site.source_id, site.latitude, site.longitude,
                                site.road, validity_for(event, site.validity_s))
            name = f'{site.source_id}-{sequence}-{event.phase}-{int(event.stamp * 1000)}.json'
            try:
                write_json_atomic(os.path.join(self.settings.json_dir, name), record)
            except OSError as exc:
                self.counts['json_errors'] += 1
                self.get_logger().warning(f'JSON event not written: {exc}',
                                          throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ health, shutdown
    def _health(self):
        input_errors = self.recent_input_errors.count()
        publish_errors = self.recent_publish_errors.count()
        values = dict(self.counts, fps=self._fps, active=self.rules.active,
                      model_frames=self.pipeline.model_frames,
                      detection_rate_hz=self.settings.detection_rate_hz,
                      dropped_frames=self.slot.dropped, backend=self.settings.backend,
                      model_sha256=self.model.sha256 or 'unchecked',
                      recent_input_errors=input_errors, recent_publish_errors=publish_errors,
                      health_window_s=HEALTH_WINDOW_S, held_waiting=self.hold.waiting,
                      **self._worker.status())
        if self._worker.dead:
            return ERROR, f'detector worker died: {self._worker.last_error}', values
        if publish_errors:
            return ERROR, f'{publish_errors} publish error(s) in the last ' \
                          f'{HEALTH_WINDOW_S:g} s: {self.recent_publish_errors.last}', values
        camera = self.camera.verdict(time.monotonic()) if self.camera is not None else None
        values['camera'] = 'off' if camera is None else camera.reason or 'ok'
        if self.camera is not None:
            values.update(self.camera.values())
        if self.video is not None:
            values.update(source_errors=self.video.errors, last_error=self.video.last_error)
            if self.video.errors and not self.video.frames:
                values['camera'] = 'silent'
                return ERROR, f'no frames: {self.video.last_error}', values
            if self.finished.is_set():
                values['camera'] = 'ok' if camera is not None else 'off'  # ended, not broken
                return OK, 'source ended', values
        if camera is not None and camera.reason:
            return ERROR, f'camera {camera.reason}: {camera.detail}', values
        if input_errors:
            return WARN, f'dropping input: {input_errors} frame(s) in the last ' \
                         f'{HEALTH_WINDOW_S:g} s ({self.recent_input_errors.last})', values
        return OK, f'{self.rules.active} active incidents', values

    def _on_retake_reference(self, _request, response):
        """~/retake_reference (std_srvs/Trigger): the camera was re-aimed on purpose; the
        next frames become the view that 'moved' is judged against."""
        self.camera.retake_reference()
        response.success = True
        response.message = (f'reference re-taken from the next '
                            f'{self.camera.config.reference_s:g} s of frames')
        self.get_logger().info('camera reference re-taken on request')
        return response

    def destroy_node(self) -> None:
        """Stop the reader and the worker, then the node."""
        if self.video is not None:
            self.video.stop()
        if self.slot is not None:
            self.slot.close()
        if self._worker is not None:
            self._worker.stop(10.0)
        super().destroy_node()


def _at_end(nodes) -> bool:
    node = nodes[0]
    return node.settings.exit_at_end and node.video is not None and node.finished.is_set()


def main(args=None) -> int:
    """Run the node; a bad parameter exits with status 2 and a message naming it."""
    return run_node(NODE_NAME, HazardDetector, args, stop_when=_at_end)


if __name__ == '__main__':
    sys.exit(main())
