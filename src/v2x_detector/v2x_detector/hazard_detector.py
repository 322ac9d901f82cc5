"""hazard_detector: YOLO + tracker on road video; collisions, fires, blockages as Alerts.

Publishes v2x/alert_out (Alert, its own source_id and persisted sequence; updates keep
the sequence with a newer header stamp, a cancellation sets cancelled) and
v2x/detections/image (annotated bgr8 frames). Reads frames from the ``source`` parameter
(a file, 'sample:bikes.mp4', an rtsp:// or udp:// URL) or, when it is empty, from the
sensor_msgs/Image topic 'image_raw'. The model runs on a worker thread; the executor only
serves parameters, the image subscription and diagnostics.
"""

from dataclasses import dataclass, fields
import math
import os
import sys
import threading
import time
import traceback

import cv2
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
import rclpy
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.mappings import kind_to_str, severity_to_str
from v2x_common.recent import RecentEvents
from v2x_common.redact import redact_url
from v2x_common.timeutil import is_zero, to_seconds
from v2x_detector import assets
from v2x_detector.conversions import (
    ImageError,
    Site,
    bgr_to_image,
    event_to_alert,
    image_to_bgr,
    validity_for,
)
from v2x_detector.detections import BackendError
from v2x_detector.fire import FireColour, load_classifier
from v2x_detector.pipeline import (
    BACKENDS,
    Pipeline,
    annotate,
    load_backend,
    seed_event,
    write_json_atomic,
)
from v2x_detector.rules import CANCEL, HazardRules, RuleConfig
from v2x_detector.sequence import SequenceStore
from v2x_detector.sources import Frame, LatestSlot, VideoSource, is_stream
from v2x_msgs.msg import Alert

NODE_NAME = 'hazard_detector'
DEFAULT_CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck')
INTAKE_DIR = '/opt/v2x/events'  # event_intake's directory: never ours (ARCHITECTURE.md)
HEALTH_WINDOW_S = 60.0  # diagnostics judge the errors of this last stretch
EXIT_WORKER_DIED = 1


class SettingsError(ValueError):
    """A parameter value the node cannot start with."""

    def __init__(self, name: str, reason: str):
        self.name = name
        super().__init__(f'parameter {name}: {reason}')


#: name -> (default, description) of the node's own parameters (rules' ones come from RuleConfig)
NODE_PARAMETERS = {
    'source': ('', "video file, 'sample:bikes.mp4', rtsp:// or udp:// URL; "
                   'empty: the topic image_raw'),
    'realtime': (True, 'read a file at its frame rate (newest frame wins); false: every frame'),
    'loop': (False, 'restart a file at its end (demo; ignored for streams and topics)'),
    'start_time': (0.0, "epoch seconds of a file's first frame; 0: from seg_<epoch> or now"),
    'exit_at_end': (False, 'stop the node when a file ends'),
    'backend': ('ultralytics', 'ultralytics (YOLO + ByteTrack) or onnx (onnxruntime alone)'),
    'model': ('', 'model file (.onnx, .pt, .engine); empty: the pinned YOLOv8n ONNX'),
    'model_sha256': ('', 'expected sha256 of model (checked when set; the default is pinned)'),
    'device': ('cpu', 'cpu or cuda:N'),
    'imgsz': (640, 'network input size in pixels (a fixed-shape ONNX takes only its own)'),
    'conf': (0.25, 'minimum detection confidence'),
    'iou': (0.7, 'NMS IoU threshold'),
    'classes': (list(DEFAULT_CLASSES), 'class names to detect; empty: all'),
    'tracker': ('bytetrack.yaml', 'ultralytics tracker configuration'),
    'fire_classifier': ('', 'module:function(bgr_crop) -> probability confirming fire blobs'),
    'source_id': ('rsu_detector_01', 'our station id in every Alert'),
    'state_dir': ('/var/lib/v2x/hazard_detector', 'where the alert sequence is persisted'),
    'json_dir': ('', "also write each alert as the seed's JSON event here; empty: off"),
    'latitude': (math.nan, 'camera site latitude, WGS84 degrees'),
    'longitude': (math.nan, 'camera site longitude, WGS84 degrees'),
    'road': ('', 'road segment id'),
    'validity_s': (0.0, 'each alert version stays valid this long after its stamp; 0: 600 s'),
    'frame_id': ('camera', 'frame_id of alerts and annotated images'),
    'publish_image': (True, 'publish annotated frames on v2x/detections/image'),
    'image_every': (1, 'publish every n-th annotated frame'),
}

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
    'fire_enabled': 'run the fire colour rule',
    'fire_frames': 'frames over which flicker is measured',
    'fire_min_area': 'blob pixels / frame pixels',
    'fire_flicker': 'minimum std/mean of the blob pixel count',
    'fire_max_drift': 'box diagonals the blob may wander over fire_frames',
    'blockage_classes': 'classes that can block a lane',
    'blockage_time_s': 'standing still in the lane this long is a blockage (s)',
    'blockage_speed': 'box diagonals/s below which an object stands still',
    'lane_polygon': 'x1,y1,x2,y2,... in 0..1 of the frame; empty: blockage off',
}


def _descriptor(description: str, value) -> ParameterDescriptor:
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    if isinstance(value, (list, tuple)):
        is_str = bool(value) and isinstance(value[0], str)
        kind = (ParameterType.PARAMETER_STRING_ARRAY if is_str
                else ParameterType.PARAMETER_DOUBLE_ARRAY)
    else:
        kind = kinds[type(value)]
    return ParameterDescriptor(description=description, type=kind)


def parameter_defaults() -> dict:
    """Every parameter the node declares, with its default (node's own, then the rules')."""
    out = {name: default for name, (default, _) in NODE_PARAMETERS.items()}
    for f in fields(RuleConfig):
        value = f.default
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


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
    classes: tuple[str, ...]
    tracker: str
    fire_classifier: str
    site: Site
    state_dir: str
    json_dir: str
    publish_image: bool
    image_every: int
    rules: RuleConfig


def _value(node: Node, name: str):
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:  # an empty array declared by type only
        return None


def read_settings(node: Node) -> Settings:
    """Parameters -> Settings; raises SettingsError naming the first bad one."""
    p = {name: _value(node, name) for name in parameter_defaults()}
    if p['backend'] not in BACKENDS:
        raise SettingsError('backend', f'{p["backend"]!r} is not one of {", ".join(BACKENDS)}')
    if not (p['device'] == 'cpu' or p['device'].startswith('cuda')):
        raise SettingsError('device', f'{p["device"]!r}: expected cpu or cuda:N')
    if not 32 <= p['imgsz'] <= 4096 or p['imgsz'] % 32:
        raise SettingsError('imgsz', f'{p["imgsz"]}: a multiple of 32 in 32..4096')
    for name in ('conf', 'iou'):
        if not 0.0 < p[name] < 1.0:
            raise SettingsError(name, f'{p[name]}: must lie in (0, 1)')
    if not p['source_id'] or len(p['source_id']) > 64:
        raise SettingsError('source_id', 'must be 1..64 characters')
    if not p['state_dir']:
        raise SettingsError('state_dir', 'must not be empty')
    if p['json_dir'] and os.path.realpath(p['json_dir']) == os.path.realpath(INTAKE_DIR):
        raise SettingsError('json_dir', f"{INTAKE_DIR} is event_intake's directory")
    if p['image_every'] < 1:
        raise SettingsError('image_every', 'must be >= 1')
    if p['validity_s'] < 0 or not math.isfinite(p['validity_s']):
        raise SettingsError('validity_s', 'must be a finite value >= 0')
    rule_values = {}
    for f in fields(RuleConfig):
        value = p[f.name]
        rule_values[f.name] = tuple(value or ()) if isinstance(f.default, tuple) else value
    rules = RuleConfig(**rule_values)
    for name, reason in rules.problems():
        raise SettingsError(name, reason)
    site = Site(p['source_id'], p['latitude'], p['longitude'], p['road'], p['validity_s'],
                p['frame_id'])
    return Settings(
        source=p['source'], realtime=p['realtime'], loop=p['loop'], start_time=p['start_time'],
        exit_at_end=p['exit_at_end'], backend=p['backend'], model=p['model'],
        model_sha256=p['model_sha256'], device=p['device'], imgsz=p['imgsz'], conf=p['conf'],
        iou=p['iou'], classes=tuple(p['classes'] or ()), tracker=p['tracker'],
        fire_classifier=p['fire_classifier'], site=site, state_dir=p['state_dir'],
        json_dir=p['json_dir'], publish_image=p['publish_image'],
        image_every=p['image_every'], rules=rules)


class HazardDetector(Node):
    """The node: frames -> Pipeline -> Alerts and annotated images."""

    def __init__(self, **kwargs):
        self._stop = threading.Event()
        self.video = self.slot = self._worker = None  # destroy_node works after a failed start
        super().__init__(NODE_NAME, **kwargs)
        for name, value in parameter_defaults().items():
            description = NODE_PARAMETERS.get(name, (None, _RULE_DESCRIPTIONS.get(name, '')))[1]
            if isinstance(value, list) and not value:
                descriptor = ParameterDescriptor(description=description,
                                                 type=ParameterType.PARAMETER_DOUBLE_ARRAY)
                self.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY, descriptor)
            else:
                self.declare_parameter(name, value, _descriptor(description, value))
        self.settings = s = read_settings(self)
        try:
            classifier = load_classifier(s.fire_classifier)
        except ValueError as exc:
            raise SettingsError('fire_classifier', str(exc)) from None
        try:
            self.model = assets.resolve_model(s.model, s.model_sha256)
        except assets.AssetError as exc:
            raise SettingsError('model' if s.model else 'model_sha256', str(exc)) from None
        try:
            backend = load_backend(s.backend, self.model.path, s.imgsz, s.conf, s.iou, s.device,
                                   s.classes, s.tracker)
        except BackendError as exc:
            raise SettingsError(str(exc).split(' ', 1)[0], str(exc)) from None
        except ValueError as exc:
            raise SettingsError('classes', str(exc)) from None
        except ImportError as exc:
            raise SettingsError('backend', f'{s.backend} is not installed: {exc}') from None
        try:
            self.sequences = SequenceStore(s.state_dir, s.site.source_id)
        except (OSError, ValueError) as exc:
            raise SettingsError('state_dir', str(exc)) from None
        self.rules = HazardRules(s.rules)
        self.pipeline = Pipeline(backend, self.rules, FireColour(), classifier)
        self.alert_pub = self.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
        self.image_pub = (self.create_publisher(Image, 'v2x/detections/image', qos.SENSOR_DATA)
                          if s.publish_image else None)
        self._sequence_of: dict[int, int] = {}
        self.counts = {'frames': 0, 'alerts': 0, 'updates': 0, 'cancels': 0,
                       'bad_images': 0, 'frame_errors': 0, 'json_errors': 0}
        # Health looks at the last HEALTH_WINDOW_S, not at lifetime counts.
        self.recent_input_errors = RecentEvents(HEALTH_WINDOW_S)
        self.recent_publish_errors = RecentEvents(HEALTH_WINDOW_S)
        self.worker_error = ''  # why the worker thread died ('' while it lives)
        self.exit_code = None   # node_main ends the process with it (a dead worker: 1)
        self._fps = 0.0
        self.finished = threading.Event()
        lossless = bool(s.source) and not s.realtime
        self.slot = LatestSlot(lossless=lossless)
        self.video = None
        if s.source:
            try:
                source = assets.resolve_source(s.source)
            except assets.AssetError as exc:
                raise SettingsError('source', str(exc)) from None
            if not is_stream(source) and not os.path.isfile(source.removeprefix('file://')):
                raise SettingsError('source', f'no such file {source!r}')
            self.video = VideoSource(source, self.slot, realtime=s.realtime, loop=s.loop,
                                     start_time=s.start_time)
        else:
            self.create_subscription(Image, 'image_raw', self._on_image, qos.SENSOR_DATA)
        self.diag = Diagnostics(self, status_fn=self._health)
        self._worker = threading.Thread(target=self._work, name='detector', daemon=True)
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
        """The worker thread: a failure of one frame or one publish is counted and the loop
        goes on; anything else ends it, and the node reports ERROR and exits non-zero."""
        try:
            self._work_loop()
        except Exception as exc:  # noqa: B902 -- a bug: say so, never die silently
            self.worker_error = f'{type(exc).__name__}: {exc}'
            self.exit_code = EXIT_WORKER_DIED
            self.get_logger().error(f'detector worker died: {self.worker_error}\n'
                                    + traceback.format_exc())

    def _work_loop(self) -> None:
        started = None
        while not self._stop.is_set():
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
                self.recent_publish_errors.add(f'{type(exc).__name__}: {exc}')
                self.get_logger().error(f'publishing frame {frame.index} failed: {exc!r}',
                                        throttle_duration_sec=5.0)

    def _input_error(self, what: str) -> None:
        self.counts['frame_errors'] += 1
        self.recent_input_errors.add(what)
        self.get_logger().warning(what, throttle_duration_sec=5.0)

    def _publish(self, frame: Frame, result) -> None:
        for event in result.events:
            self._publish_event(event)
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
                sequence = self.sequences.next()
            except OSError as exc:
                self.recent_publish_errors.add(
                    f'cannot store the alert sequence in {self.sequences.path}: {exc}')
                self.get_logger().error(
                    f'{kind_to_str(event.kind)} alert held back: cannot store its sequence '
                    f'in {self.sequences.path} ({exc.strerror or exc}); retried with the '
                    "incident's next update", throttle_duration_sec=5.0)
                return
            self._sequence_of[event.incident] = sequence
            self.counts['alerts'] += 1
            self.get_logger().info(
                f'alert {sequence}: {kind_to_str(event.kind)}, severity '
                f'{severity_to_str(event.severity)}, confidence {event.confidence:.2f}, '
                f'tracks {list(event.track_ids)}')
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
                write_json_atomic(self.settings.json_dir, name, record)
            except OSError as exc:
                self.counts['json_errors'] += 1
                self.get_logger().warning(f'JSON event not written: {exc}',
                                          throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ health, shutdown
    def _health(self):
        input_errors = self.recent_input_errors.count()
        publish_errors = self.recent_publish_errors.count()
        values = dict(self.counts, fps=self._fps, active=self.rules.active,
                      dropped_frames=self.slot.dropped, backend=self.settings.backend,
                      model_sha256=self.model.sha256 or 'unchecked',
                      worker_alive=self._worker is not None and self._worker.is_alive(),
                      recent_input_errors=input_errors, recent_publish_errors=publish_errors,
                      health_window_s=HEALTH_WINDOW_S)
        if self.worker_error:
            return ERROR, f'detector worker died: {self.worker_error}', values
        if publish_errors:
            return ERROR, f'{publish_errors} publish error(s) in the last ' \
                          f'{HEALTH_WINDOW_S:g} s: {self.recent_publish_errors.last}', values
        if self.video is not None:
            values.update(source_errors=self.video.errors, last_error=self.video.last_error)
            if self.video.errors and not self.video.frames:
                return ERROR, f'no frames: {self.video.last_error}', values
            if self.finished.is_set():
                return OK, 'source ended', values
        if input_errors:
            return WARN, f'dropping input: {input_errors} frame(s) in the last ' \
                         f'{HEALTH_WINDOW_S:g} s ({self.recent_input_errors.last})', values
        return OK, f'{self.rules.active} active incidents', values

    def destroy_node(self) -> None:
        """Stop the reader and the worker, then the node."""
        self._stop.set()
        if self.video is not None:
            self.video.stop()
        if self.slot is not None:
            self.slot.close()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(10.0)
        super().destroy_node()


def main(args=None) -> int:
    """Run the node; a bad parameter exits with status 2 and a message naming it."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = HazardDetector()
        until_end = node.settings.exit_at_end and node.video is not None
        while rclpy.ok() and node.exit_code is None and not (
                until_end and node.finished.is_set()):
            rclpy.spin_once(node, timeout_sec=0.2)
        code = node.exit_code or 0
    except SettingsError as exc:
        print(f'{NODE_NAME}: {exc}', file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
