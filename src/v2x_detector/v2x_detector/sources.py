"""Frame sources: a video file or a stream URL read on a thread, newest frame wins (pure).

Capture time of each frame:
- a file: start + PTS, where start is the epoch in a recorder segment's name
  (seg_<unix epoch>.mp4), else the start_time given, else the wall time when reading began;
- a stream (rtsp://, udp://, http://, ...): the wall time when the frame was read.

Frames go through a FrameQueue: the consumer takes them in order; a queue that is full
(the consumer fell behind by ``capacity`` frames) drops its oldest frame (counted), so
the delay stays bounded. LatestSlot is a queue of one frame: newest wins. With
``lossless`` (a file read as fast as possible, for tests and benches) the reader waits
for the consumer instead, so every frame is processed. The node decides which of the
frames it takes the model sees (pipeline.DetectionSchedule).
"""

from collections import deque
from dataclasses import dataclass
import os
import re
import threading
import time
from typing import Iterator

import cv2
import numpy as np

from v2x_common.redact import redact_url

_SEGMENT = re.compile(r'seg_(\d{9,11})(?:\.\d+)?\.\w+$')


@dataclass(frozen=True)
class Frame:
    """One decoded BGR frame with its capture time (epoch seconds) and index."""

    image: np.ndarray
    t: float
    index: int


def is_stream(source: str) -> bool:
    """True for a URL other than file:// (a live source: wall-clock times)."""
    return '://' in source and not source.startswith('file://')


def open_failure(source: str) -> str:
    """Why source could not be opened and how to fix it (credentials left out)."""
    shown = redact_url(source)
    if source.startswith('/dev/'):
        return (f'cannot open camera device {shown}: check that it exists (ls /dev/video*), '
                "that the node's user may read it (group video), and that no other program "
                "holds it (a V4L2 device opens once: read the recorder's local_stream)")
    if is_stream(source):
        return (f'cannot open {shown}: check the URL (scheme, host, port, path, user and '
                "password) and that the camera, or the recorder's local_stream, is reachable "
                'and sending video')
    return f'cannot open {shown}: not a video file OpenCV can read'


def segment_start(path: str) -> float | None:
    """The epoch in a recorder segment's file name, else None."""
    m = _SEGMENT.search(os.path.basename(path))
    return float(m.group(1)) if m else None


class FrameQueue:
    """A bounded mailbox of frames in order: put() on a full queue drops the oldest frame
    (counted in ``dropped``), or waits for room if lossless."""

    def __init__(self, capacity: int = 1, lossless: bool = False):
        if capacity < 1:
            raise ValueError(f'capacity {capacity}: must be >= 1')
        self.capacity = capacity
        self.lossless = lossless
        self.dropped = 0
        self._frames: deque = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Offer a frame; False once closed."""
        with self._cond:
            while self.lossless and len(self._frames) >= self.capacity and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                return False
            if len(self._frames) >= self.capacity:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> Frame | None:
        """The oldest frame waiting, waiting up to timeout; None when none came."""
        with self._cond:
            if not self._frames:
                self._cond.wait_for(lambda: bool(self._frames) or self._closed, timeout)
            frame = self._frames.popleft() if self._frames else None
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """Wake every waiter; further puts are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LatestSlot(FrameQueue):
    """A one-frame mailbox: put() replaces what was not taken yet (or waits, if lossless)."""

    def __init__(self, lossless: bool = False):
        super().__init__(1, lossless)


class VideoSource:
    """Reads a file or URL with OpenCV's FFmpeg backend on a daemon thread into a FrameQueue."""

    def __init__(self, source: str, slot: FrameQueue, realtime: bool = True, loop: bool = False,
                 start_time: float = 0.0, reconnect_s: float = 2.0, clock=time.time):
        self.source = source
        self.slot = slot
        self.stream = is_stream(source)
        self.realtime = realtime
        self.loop = loop and not self.stream
        self.start_time = start_time
        self.reconnect_s = reconnect_s
        self.clock = clock
        self.frames = 0
        self.errors = 0
        self.last_error = ''
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='video_source', daemon=True)

    def start(self) -> 'VideoSource':
        """Start reading."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and wait for the thread."""
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _open(self):
        path = self.source[len('file://'):] if self.source.startswith('file://') else self.source
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _run(self) -> None:
        try:
            offset = 0.0  # seconds added per loop of a file so capture times keep rising
            start = self.start_time or segment_start(self.source) or self.clock()
            while not self._stop.is_set():
                cap = self._open()
                if cap is None:
                    self.errors += 1
                    self.last_error = open_failure(self.source)
                    if not self.stream:
                        return
                    self._stop.wait(self.reconnect_s)
                    continue
                last_pts = self._read_all(cap, start, offset)
                cap.release()
                if self.stream:
                    self.errors += 1
                    self.last_error = 'stream ended; reconnecting'
                    self._stop.wait(self.reconnect_s)
                elif self.loop and last_pts is not None:
                    offset += last_pts + 1.0 / 25.0
                else:
                    return
        finally:
            self.finished.set()

    def _read_all(self, cap, start: float, offset: float) -> float | None:
        wall0 = time.monotonic()
        last_pts = None
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                return last_pts
            if self.stream:
                t = self.clock()
            else:
                pts = last_pts = frame_pts(cap, last_pts, fps)
                t = start + offset + pts
                if self.realtime:
                    delay = pts - (time.monotonic() - wall0)
                    if delay > 0 and self._stop.wait(delay):
                        return last_pts
            if not self.slot.put(Frame(image, t, self.frames)):
                return last_pts
            self.frames += 1
        return last_pts


def frame_pts(cap, last_pts: float | None, fps: float) -> float:
    """The presentation time (s) of the frame cap.read() just gave; rising even in a
    container without timestamps (then the previous one + 1/fps)."""
    pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
    if last_pts is not None and pts <= last_pts:
        pts = last_pts + 1.0 / fps
    return pts


def decode(path: str) -> Iterator[tuple[np.ndarray, float]]:
    """(BGR frame, presentation time in s) of every frame of a video file, in order: the
    times VideoSource gives a file (less its start), for offline runs (hazard_detector_eval)."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise OSError(open_failure(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        last_pts = None
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                return
            last_pts = frame_pts(cap, last_pts, fps)
            yield image, last_pts
    finally:
        cap.release()


def read_frames(path: str, limit: int | None = None) -> list[np.ndarray]:
    """All (or the first limit) decoded BGR frames of a video file, for tests and benches."""
    cap = cv2.VideoCapture(path)
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def write_video(path: str, frames: list[np.ndarray], fps: float = 25.0) -> str:
    """BGR frames -> an mp4 file (OpenCV's mp4v writer), for tests and benches."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    if not os.path.exists(path) or not os.path.getsize(path):
        raise OSError(f'could not write {path}')
    return path
