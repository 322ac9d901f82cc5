"""Core values <-> messages: HazardEvent -> Alert, sensor_msgs/Image <-> numpy (no cv_bridge).

The image conversion honours encoding and step (row padding): bgr8, rgb8, bgra8, rgba8,
mono8, mono16 and the 8-bit Bayer patterns come in; bgr8 goes out. Other encodings (yuv422,
16-bit colour, ...) go to a ROS 2 distro's cv_bridge where one is installed.
"""

from dataclasses import dataclass
import math

import cv2
import numpy as np
from sensor_msgs.msg import Image

from v2x_common.timeutil import fill_stamp
from v2x_conversion.alert import alert_to_msg
from v2x_conversion.times import seconds_to_ns
from v2x_detector.rules import CANCEL, HazardEvent
from v2x_msgs.msg import Alert
from v2x_protocol.wire import AlertData

#: DENM's default validity, used when the validity_s parameter is 0
DEFAULT_VALIDITY_S = 600.0


def validity_for(event: HazardEvent, validity_s: float) -> float:
    """Seconds after detection_time this version stays valid: its age plus validity_s.

    Receivers expire an alert at detection_time + validity_s; an incident that lasts (a
    blockage for an hour) must not expire while its updates keep coming.
    """
    return max(0.0, event.stamp - event.detection_time) + (validity_s or DEFAULT_VALIDITY_S)


class ImageError(ValueError):
    """An Image message that cannot be turned into a frame (the sender's fault)."""


@dataclass(frozen=True)
class Site:
    """Where the camera is: copied into every alert."""

    source_id: str
    latitude: float = math.nan
    longitude: float = math.nan
    road: str = ''
    validity_s: float = 0.0   # per version, after its stamp; 0 = DEFAULT_VALIDITY_S
    frame_id: str = 'camera'


def event_alert(event: HazardEvent, sequence: int, site: Site) -> AlertData:
    """One version of an incident as the protocol's alert, our source_id and sequence."""
    return AlertData(
        source_id=site.source_id, sequence=int(sequence), kind=int(event.kind),
        severity=int(event.severity), suggest=int(event.suggest),
        stamp_ns=seconds_to_ns(event.stamp),
        detection_time_ns=seconds_to_ns(event.detection_time),
        validity_s=float(validity_for(event, site.validity_s)),
        cancelled=event.phase == CANCEL, latitude=float(site.latitude),
        longitude=float(site.longitude), road=site.road, distance_m=math.nan,
        confidence=float(event.confidence), clip_requested=bool(event.clip_requested))


def event_to_alert(event: HazardEvent, sequence: int, site: Site) -> Alert:
    """One version of an incident as an Alert message (v2x_conversion's, as every node's)."""
    return alert_to_msg(event_alert(event, sequence, site), frame_id=site.frame_id)


_CHANNELS = {'bgr8': 3, 'rgb8': 3, 'bgra8': 4, 'rgba8': 4, 'mono8': 1, 'mono16': 1,
             '8uc1': 1, '8uc3': 3, '16uc1': 1,
             'bayer_rggb8': 1, 'bayer_bggr8': 1, 'bayer_gbrg8': 1, 'bayer_grbg8': 1}
_TO_BGR = {'rgb8': cv2.COLOR_RGB2BGR, 'bgra8': cv2.COLOR_BGRA2BGR, 'rgba8': cv2.COLOR_RGBA2BGR,
           'mono8': cv2.COLOR_GRAY2BGR, '8uc1': cv2.COLOR_GRAY2BGR,
           'bayer_rggb8': cv2.COLOR_BayerRGGB2BGR, 'bayer_bggr8': cv2.COLOR_BayerBGGR2BGR,
           'bayer_gbrg8': cv2.COLOR_BayerGBRG2BGR, 'bayer_grbg8': cv2.COLOR_BayerGRBG2BGR}


_BRIDGE: list = []  # [CvBridge or None], filled on first use


def _cv_bridge():
    """A distro's cv_bridge (ROS 2 has none on PyPI), or None."""
    if not _BRIDGE:
        try:
            from cv_bridge import CvBridge
            _BRIDGE.append(CvBridge())
        except ImportError:
            _BRIDGE.append(None)
    return _BRIDGE[0]


def _via_cv_bridge(msg: Image) -> np.ndarray:
    bridge = _cv_bridge()
    if bridge is None:
        raise ImageError(f'unsupported encoding {msg.encoding!r} (and no cv_bridge)')
    from cv_bridge import CvBridgeError
    try:
        return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding='bgr8'))
    except (CvBridgeError, cv2.error, TypeError, ValueError) as exc:
        raise ImageError(f'cv_bridge cannot convert {msg.encoding!r}: {exc}') from None


def image_to_bgr(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 BGR (a copy); raises ImageError on bad input."""
    enc = msg.encoding.lower()
    if enc not in _CHANNELS:
        return _via_cv_bridge(msg)
    channels = _CHANNELS[enc]
    depth = 2 if enc in ('mono16', '16uc1') else 1
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels * depth
    if h <= 0 or w <= 0 or step < row or len(msg.data) < step * (h - 1) + row:
        raise ImageError(f'{w}x{h} {enc} does not fit step {step} and {len(msg.data)} bytes')
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1))
    if depth == 2:
        big = bool(msg.is_bigendian)
        mono = rows.copy().view('>u2' if big else '<u2').reshape(h, w)
        return cv2.cvtColor((mono >> 8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    img = rows.reshape(h, w, channels) if channels > 1 else rows.reshape(h, w)
    if enc in ('bgr8', '8uc3'):
        return img.copy()
    return cv2.cvtColor(np.ascontiguousarray(img), _TO_BGR[enc])


def bgr_to_image(img: np.ndarray, stamp: float, frame_id: str = 'camera') -> Image:
    """HxWx3 uint8 BGR -> sensor_msgs/Image bgr8 (step = 3 * width)."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    msg = Image()
    fill_stamp(msg.header.stamp, stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = 'bgr8'
    msg.is_bigendian = 0
    msg.step = int(img.shape[1] * 3)
    msg.data = img.tobytes()
    return msg
