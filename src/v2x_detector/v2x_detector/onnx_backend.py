"""The light backend: YOLOv8 on onnxruntime alone (no torch, no ultralytics).

Pre-processing and post-processing follow ultralytics' own for a fixed-shape ONNX export
(centred letterbox with grey 114 padding, RGB, 0..1; output 1x(4+C)xN decoded to boxes,
class-aware NMS), so both backends find the same boxes on the same image.
"""

import ast

import cv2
import numpy as np

from v2x_detector.detections import BackendError, Detection, Track
from v2x_detector.tracker import IouTracker


def letterbox(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio and pad to size (h, w); returns image, gain, (left, top)."""
    h0, w0 = img.shape[:2]
    h, w = size
    gain = min(h / h0, w / w0)
    nw, nh = round(w0 * gain), round(h0 * gain)
    if (nw, nh) != (w0, h0):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (w - nw) / 2, (h - nh) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                             value=(114, 114, 114))
    return img, gain, (left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    order = np.argsort(-scores, kind='stable')
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode(output: np.ndarray, conf: float, iou_threshold: float, max_det: int = 300,
           classes: frozenset[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1x(4+C)xN raw output -> (xyxy boxes in network pixels, scores, class ids) after NMS."""
    pred = output[0].T  # N x (4+C)
    scores_all = pred[:, 4:]
    cls = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(cls)), cls]
    mask = scores > conf
    if classes is not None:
        mask &= np.isin(cls, list(classes))
    pred, scores, cls = pred[mask], scores[mask], cls[mask]
    xy, wh = pred[:, 0:2], pred[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    offset = cls[:, None].astype(np.float32) * 7680.0  # class-aware NMS, as ultralytics
    keep = nms(boxes + offset, scores, iou_threshold)[:max_det]
    return boxes[keep], scores[keep], cls[keep]


class OnnxDetector:
    """YOLOv8 detect model on onnxruntime; detect(frame) and track(frame)."""

    name = 'onnx'

    def __init__(self, path: str, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 device: str = 'cpu', classes: frozenset[int] | None = None, threads: int = 0,
                 tracker: IouTracker | None = None):
        import onnxruntime as ort  # only this backend needs it

        providers = ['CPUExecutionProvider']
        if device.startswith('cuda'):
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise BackendError(f'device {device!r}: this onnxruntime has no CUDA provider')
            index = int(device.partition(':')[2] or 0)
            providers = [('CUDAExecutionProvider', {'device_id': index})] + providers
        elif device != 'cpu':
            raise BackendError(f'device {device!r}: expected cpu or cuda:N')
        options = ort.SessionOptions()
        # no busy-waiting of idle pool threads: they would take the CPU from the frame
        # reader, the rules and ROS (measured on 2 cores: -20 ms CPU per frame, same fps)
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime's own exception types derive from Exception only
            raise BackendError(f'model {path!r} cannot be loaded: {exc}') from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        fixed = [d for d in inp.shape[2:4] if isinstance(d, int)]
        if len(fixed) == 2 and (fixed[0] != imgsz or fixed[1] != imgsz):
            raise BackendError(f'imgsz {imgsz}: this model takes only {fixed[0]}x{fixed[1]}')
        self.size = (imgsz, imgsz)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.names = dict(ast.literal_eval(meta['names']))
        except (KeyError, ValueError, SyntaxError):
            n = self.session.get_outputs()[0].shape[1] - 4
            self.names = {i: str(i) for i in range(n)}
        self.conf, self.iou, self.classes = conf, iou, classes
        self.tracker = tracker or IouTracker()

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        """BGR frame -> 1x3xHxW float32 blob, gain, padding."""
        img, gain, pad = letterbox(frame, self.size)
        blob = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)
        return blob[None] / 255.0, gain, pad

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Boxes, classes and scores in the frame's pixels."""
        blob, gain, (left, top) = self.preprocess(frame)
        output = self.session.run(None, {self.input_name: blob})[0]
        boxes, scores, cls = decode(output, self.conf, self.iou, classes=self.classes)
        h, w = frame.shape[:2]
        boxes = (boxes - np.array([left, top, left, top], dtype=np.float32)) / gain
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return [Detection(tuple(float(v) for v in b), int(c), self.names.get(int(c), str(c)),
                          float(s)) for b, s, c in zip(boxes, scores, cls, strict=False)]

    def track(self, frame: np.ndarray) -> list[Track]:
        """Detections of this frame with ids from the IoU tracker."""
        return self.tracker.update(self.detect(frame))

    def set_classes(self, ids: frozenset[int] | None) -> None:
        """Keep only these class ids (None: all)."""
        self.classes = ids

    def reset(self) -> None:
        """Forget tracks (a new stream starts)."""
        self.tracker.reset()
