"""The full backend: ultralytics YOLO (any format it loads) with its ByteTrack tracker.

ultralytics is imported only here, after the environment forbids it to touch the network
or pip-install anything, so the light install (no torch) never reaches this module.
"""

import os
import tempfile

import numpy as np

from v2x_detector.detections import BackendError, Detection, Track


def offline_environment() -> None:
    """YOLO_OFFLINE=1, YOLO_AUTOINSTALL=false and a writable YOLO_CONFIG_DIR (unless set)."""
    os.environ['YOLO_OFFLINE'] = '1'
    os.environ['YOLO_AUTOINSTALL'] = 'false'
    if not os.environ.get('YOLO_CONFIG_DIR'):
        os.environ['YOLO_CONFIG_DIR'] = os.path.join(tempfile.gettempdir(), 'v2x_ultralytics')
    os.makedirs(os.environ['YOLO_CONFIG_DIR'], exist_ok=True)


class UltralyticsDetector:
    """YOLO(path, task='detect'): detect(frame) = predict, track(frame) = ByteTrack."""

    name = 'ultralytics'

    def __init__(self, path: str, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 device: str = 'cpu', tracker: str = 'bytetrack.yaml'):
        offline_environment()
        from ultralytics import YOLO  # noqa: I001 (after the environment is set)

        self.args = dict(imgsz=imgsz, conf=conf, iou=iou, device=device, verbose=False,
                         classes=None)
        self.tracker = tracker
        try:
            self.model = YOLO(path, task='detect')
            # load the model now (a bad file fails at start-up, not on the first frame)
            self.model.track(np.zeros((64, 64, 3), np.uint8), persist=True, tracker=tracker,
                             **self.args)
        except Exception as exc:  # ultralytics raises many types for an unusable file
            raise BackendError(f'model {path!r} cannot be loaded: {exc}') from None
        self.names = dict(self.model.names or {})
        self._persist_reset = True  # the first real frame starts fresh trackers

    def _results(self, result) -> list[tuple]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy()
        cls = boxes.cls.cpu().numpy().astype(int)
        conf = boxes.conf.cpu().numpy()
        ids = ([int(i) for i in boxes.id.cpu().numpy()] if boxes.id is not None
               else [None] * len(cls))
        names = result.names or self.names
        return [(tuple(float(v) for v in b), int(c), names.get(int(c), str(c)), float(s), i)
                for b, c, s, i in zip(xyxy, cls, conf, ids, strict=False)]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """The bare model's predict on one BGR frame."""
        result = self.model.predict(frame, **self.args)[0]
        return [Detection(b, c, n, s) for b, c, n, s, _ in self._results(result)]

    def track(self, frame: np.ndarray) -> list[Track]:
        """predict + ByteTrack with persistent ids; unconfirmed boxes (no id) are left out."""
        result = self.model.track(frame, persist=not self._persist_reset,
                                  tracker=self.tracker, **self.args)[0]
        self._persist_reset = False
        return [Track(i, b, c, n, s) for b, c, n, s, i in self._results(result) if i is not None]

    def set_classes(self, ids: frozenset[int] | None) -> None:
        """Keep only these class ids (None: all)."""
        self.args['classes'] = sorted(ids) if ids is not None else None

    def reset(self) -> None:
        """The next track() call starts fresh trackers."""
        self._persist_reset = True
