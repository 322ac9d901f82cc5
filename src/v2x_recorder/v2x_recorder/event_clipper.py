"""event_clipper: evidence clips around events, from the recorder's ring to the archive.

For each Alert on v2x/alert_sent with clip_requested (or every alert, by parameter) and
each v2x/request_clip call, cut accident_<T0>_<clip_id>.mp4 covering [T0 - pre, T0 + post]
once the post-window is recorded (plus one segment), write its .json sidecar and publish
Clip on v2x/clip. Pending clips are persisted in state_dir, so they survive a restart and
the recorder keeps their footage. The cut runs in a worker thread; ROS callbacks and
publishing stay on the executor thread.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
import os
import sys
import time

from rclpy.node import Node

from v2x_common import qos
from v2x_common.diagnostics import OK, WARN, Diagnostics
from v2x_common.node_main import EXIT_MISSING_TOOL, run_node
from v2x_common.params import (
    Param,
    ParameterError,
    declare_parameters,
    directory,
    ge,
    gt,
    make_dirs,
)
from v2x_msgs.msg import Alert, Clip
from v2x_msgs.srv import RequestClip
from v2x_recorder import archive, clips, conversions, cutter, ffmpeg_tools, segments
from v2x_recorder.pending import PendingStore

NODE_NAME = 'event_clipper'

PARAMETERS = (
    Param('recording_dir', '/var/rec', "segment_recorder's seg_<epoch>.mp4 directory",
          directory),
    Param('archive_dir', '/var/archive', 'where accident_<T0>_<clip_id>.mp4/.json go',
          directory),
    Param('state_dir', '/var/lib/v2x/recorder', 'where pending clips are persisted (shared '
          'with segment_recorder)', directory),
    Param('segment_s', 10.0, "the recorder's segment length in seconds", gt(0.0)),
    Param('pre_window_s', 300.0, 'default seconds before T0 in a clip', ge(0.0)),
    Param('post_window_s', 300.0, 'default seconds after T0 in a clip', ge(0.0)),
    Param('clip_every_alert', False, 'clip every alert on v2x/alert_sent, not only those '
          'with clip_requested'),
    Param('archive_max_count', 1000, 'most clips kept in the archive (0 = no limit)',
          ge(0.0)),
    Param('archive_max_bytes', 50_000_000_000, 'byte cap of the archive (0 = no limit)',
          ge(0.0)),
    Param('archive_max_age_s', 2_592_000.0, 'clips older than this are deleted (0 = keep)',
          ge(0.0)),
    Param('settle_s', 1.0, 'extra wait after the post-window plus one segment',
          ge(0.0)),
    Param('ffmpeg_path', '', 'ffmpeg binary; empty = system ffmpeg, then imageio-ffmpeg'),
    Param('check_period_s', 0.5, 'how often pending clips are checked', gt(0.0)),
)

#: How often archive retention runs besides after each clip.
ARCHIVE_PERIOD_S = 60.0


@dataclass(frozen=True)
class ClipperSettings:
    """event_clipper's parameters, read once and validated."""

    recording_dir: str
    archive_dir: str
    state_dir: str
    segment_s: float
    pre_window_s: float
    post_window_s: float
    clip_every_alert: bool
    archive_max_count: int
    archive_max_bytes: int
    archive_max_age_s: float
    settle_s: float
    ffmpeg_path: str
    check_period_s: float

    def validate(self) -> None:
        """Cross-parameter checks; raises ParameterError."""
        if self.pre_window_s + self.post_window_s <= 0:
            raise ParameterError('post_window_s', 'pre_window_s + post_window_s must be > 0')

    @property
    def archive_policy(self) -> archive.ArchivePolicy:
        return archive.ArchivePolicy(self.archive_max_count, self.archive_max_bytes,
                                     self.archive_max_age_s)


class EventClipper(Node):
    """Turns alerts and requests into archived clips."""

    def __init__(self, **kwargs):
        # What destroy_node uses exists before anything can fail: a node whose start-up
        # failed (a bad parameter) is still destroyed.
        self._worker: ThreadPoolExecutor | None = None
        self.diag: Diagnostics | None = None
        super().__init__(NODE_NAME, **kwargs)
        self.settings = ClipperSettings(**declare_parameters(self, PARAMETERS))
        self.settings.validate()
        s = self.settings
        self.tools = ffmpeg_tools.find_ffmpeg(s.ffmpeg_path)
        make_dirs(archive_dir=s.archive_dir, state_dir=s.state_dir)
        self.store = PendingStore(s.state_dir)
        loaded, problems = self.store.load()
        for problem in problems:
            self.get_logger().warning(f'dropped a persisted clip request: {problem}')
        self.pending: dict[str, clips.ClipRequest] = {r.clip_id: r for r in loaded}
        self._running: dict[str, Future] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='clip')
        self.counts = {'published': 0, 'failed': 0, 'no_footage': 0, 'with_gaps': 0,
                       'rejected': 0, 'duplicates': 0, 'archive_deleted': 0,
                       'save_failed': 0}
        self._last_archive = 0.0
        self.pub = self.create_publisher(Clip, 'v2x/clip', qos.CLIP)
        self.sub = self.create_subscription(Alert, 'v2x/alert_sent', self._on_alert,
                                            qos.ALERT_SENT)
        self.srv = self.create_service(RequestClip, 'v2x/request_clip', self._on_request)
        self.diag = Diagnostics(self, status_fn=self._health)
        self._timer = self.create_timer(s.check_period_s, self._tick)
        self.get_logger().info(
            f'clipping {s.recording_dir} -> {s.archive_dir} (pre {s.pre_window_s:g} s, post '
            f'{s.post_window_s:g} s); {len(self.pending)} pending clip(s) resumed')

    # --- inputs ------------------------------------------------------------------------

    def _on_alert(self, msg: Alert) -> None:
        if not (msg.clip_requested or self.settings.clip_every_alert) or msg.cancelled:
            return
        try:
            request = conversions.request_from_alert(
                msg, self.settings.pre_window_s, self.settings.post_window_s, time.time())
        except clips.BadClipRequest as exc:
            self.counts['rejected'] += 1
            self.get_logger().warning(f'alert {msg.source_id}/{msg.sequence} dropped: {exc}',
                                   throttle_duration_sec=5.0)
            return
        self.add(request)

    def _on_request(self, req, response):
        try:
            request = conversions.request_from_service(
                req, self.settings.pre_window_s, self.settings.post_window_s, time.time())
        except clips.BadClipRequest as exc:
            self.counts['rejected'] += 1
            response.accepted = False
            response.message = str(exc)
            return response
        accepted, message = self.add(request)
        response.accepted = accepted
        response.path = self.video_path(request) if accepted else ''
        response.message = message
        return response

    def video_path(self, request: clips.ClipRequest) -> str:
        """Where the clip of request is (or will be) written."""
        return os.path.abspath(os.path.join(self.settings.archive_dir, request.stem + '.mp4'))

    def add(self, request: clips.ClipRequest) -> tuple[bool, str]:
        """Queue a clip (persisted at once); a clip_id already queued is not queued twice."""
        if request.clip_id in self.pending:
            self.counts['duplicates'] += 1
            return True, f'clip {request.clip_id} already pending'
        self.pending[request.clip_id] = request
        problem = self._save()
        if problem:
            # Not persisted: refused, so that no caller counts on a clip a restart loses.
            del self.pending[request.clip_id]
            self.get_logger().error(f'clip {request.clip_id} refused: {problem}',
                                    throttle_duration_sec=5.0)
            return False, f'refused: {problem}'
        due = clips.due_at(request, self.settings.segment_s, self.settings.settle_s)
        wait = max(0.0, due - time.time())
        self.get_logger().info(f'clip {request.clip_id} queued: T0 {request.t0:.3f}, window '
                               f'-{request.pre_s:g}/+{request.post_s:g} s, cut within '
                               f'{wait:.1f} s')
        return True, f'queued; cut within {wait:.1f} s'

    def _save(self) -> str:
        """Persist the pending clips; '' or the problem (disk full, state_dir unwritable)."""
        try:
            self.store.save(self.pending.values())
        except OSError as exc:
            self.counts['save_failed'] += 1
            return f'cannot save pending clips to {self.store.path}: {exc}'
        return ''

    # --- the work ----------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.time()
        for clip_id, future in list(self._running.items()):
            if future.done():
                del self._running[clip_id]
                self._finish(self.pending.get(clip_id), future)
        waiting = [r for r in self.pending.values() if r.clip_id not in self._running]
        found = segments.scan(self.settings.recording_dir) if waiting else []
        newest = found[-1].start if found else None
        for request in waiting:
            clip_id = request.clip_id
            if clips.is_due(request, now, self.settings.segment_s, self.settings.settle_s,
                            newest):
                self._running[clip_id] = self._worker.submit(
                    cutter.cut_clip, request, self.settings.recording_dir,
                    self.settings.archive_dir, self.tools)
        if now - self._last_archive > ARCHIVE_PERIOD_S:
            self._enforce_archive(now)

    def _finish(self, request: clips.ClipRequest | None, future: Future) -> None:
        if request is None:
            return
        exc = future.exception()
        if exc is not None:
            if not isinstance(exc, (OSError, ValueError)):
                raise exc
            result = clips.ClipResult(request.clip_id, request.t0, '', '', 0.0, (),
                                      f'cutting failed: {exc}')
        else:
            result = future.result()
        self.pub.publish(conversions.clip_to_msg(result))
        self.counts['published'] += 1
        if result.error:  # no footage: a sidecar listing no segments
            no_footage = result.sidecar.get('segments') == []
            self.counts['no_footage' if no_footage else 'failed'] += 1
        if result.gaps:
            self.counts['with_gaps'] += 1
        if result.error:
            self.get_logger().warning(f'clip {result.clip_id}: {result.error}')
        else:
            self.get_logger().info(
                f'clip {result.clip_id} ready: {result.path} ({result.duration_s:.1f} s'
                + (f', {len(result.gaps)} gap(s)' if result.gaps else '') + ')')
        self.pending.pop(request.clip_id, None)
        problem = self._save()
        if problem:  # the clip is out; a restart may cut it again
            self.get_logger().error(problem, throttle_duration_sec=5.0)
        self._enforce_archive(time.time())

    def _enforce_archive(self, now: float) -> None:
        self._last_archive = now
        protected = {r.stem for r in self.pending.values()}
        found = archive.scan_archive(self.settings.archive_dir)
        for clip, reason in archive.plan_archive_deletions(
                found, now, self.settings.archive_policy, protected):
            archive.delete_clip(clip)
            self.counts['archive_deleted'] += 1
            self.get_logger().info(f'archive: deleted {clip.stem} ({reason})')

    # --- health ------------------------------------------------------------------------

    def _health(self):
        values = dict(self.counts, pending=len(self.pending), cutting=len(self._running),
                      ffmpeg=self.tools.ffmpeg)
        if self.counts['failed']:
            return WARN, f'{self.counts["failed"]} clip(s) failed', values
        if self.counts['save_failed']:
            return WARN, f'{self.counts["save_failed"]} save(s) of pending clips failed', values
        return OK, f'{len(self.pending)} pending clip(s)', values

    def destroy_node(self):
        # A cut in progress finishes (its request stays persisted until published).
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)
        diag, self.diag = self.diag, None
        if diag is not None:
            diag.destroy()
        return super().destroy_node()


def main(args=None):
    """Run event_clipper until shut down; exits non-zero on a bad start-up."""
    return run_node(NODE_NAME, EventClipper, args,
                    {ffmpeg_tools.FfmpegNotFound: EXIT_MISSING_TOOL})


if __name__ == '__main__':
    sys.exit(main())
