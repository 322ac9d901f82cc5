"""event_clipper: evidence clips around events, from the recorder's ring to the archive.

For each Alert on v2x/alert_sent with clip_requested (or every alert, by parameter) and
each v2x/request_clip call, cut accident_<T0>_<clip_id>.mp4 covering [T0 - pre, T0 + post]
once the post-window is recorded (plus one segment), write its .json sidecar and publish
Clip on v2x/clip. Pending clips are persisted in state_dir, so they survive a restart and
the recorder keeps their footage. The cut runs in a worker thread; ROS callbacks and
publishing stay on the executor thread.

v2x/alert_sent is read transient-local: a clipper that starts after alerts went out gets
the gateway's history, and clips each event once, keyed by (source_id, origin, sequence)
as the archive's evidence log records it. Each sidecar is signed with the station's
evidence key and appended to the evidence log; retention deletions are log records too,
and a clip under a legal hold (v2x_hold_evidence) is never deleted.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
import os
import socket
import sys
import time
import traceback

from rclpy.node import Node

from v2x_common import qos
from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.files import write_json_atomic
from v2x_common.node_main import EXIT_MISSING_TOOL, run_node
from v2x_common.params import (
    Param,
    ParameterError,
    declare_parameters,
    directory,
    ge,
    gt,
)
from v2x_common.paths import make_dirs
from v2x_common.recent import RecentEvents
from v2x_evidence import evidence
from v2x_evidence import log as evidence_log
from v2x_msgs.msg import Alert, Clip
from v2x_msgs.srv import RequestClip
from v2x_recorder import (
    archive,
    clips,
    conversions,
    cutter,
    ffmpeg_tools,
    segments,
)
from v2x_recorder.pending import CLIPPER_SETTINGS_FILE, PendingStore

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
    Param('archive_max_age_s', 2_592_000.0, 'hand-made clips (v2x_make_clip, the service) '
          'older than this are deleted (0 = keep)', ge(0.0)),
    Param('archive_alert_max_age_s', 0.0, 'clips of real alerts older than this are deleted '
          '(0 = keep until the count or byte cap needs room: they go last)', ge(0.0)),
    Param('settle_s', 1.0, 'wait after the recorder began the segment past T0 + post',
          ge(0.0)),
    Param('cut_deadline_s', clips.DEFAULT_DEADLINE_S, 'longest wait after T0 + post for its '
          'footage (recorder down or behind); then what exists is cut, the rest are gaps',
          gt(0.0)),
    Param('ffmpeg_path', '', 'ffmpeg binary; empty = system ffmpeg, then imageio-ffmpeg'),
    Param('check_period_s', 0.5, 'how often pending clips are checked', gt(0.0)),
    Param('health_window_s', 60.0, 'diagnostics judge the problems of this last stretch '
          '(seconds); lifetime totals stay in the values', gt(0.0)),
    Param('evidence_key_file', '', "the station's Ed25519 evidence key (PEM, mode 0600; not "
          'an alert key): signs each sidecar and the evidence log; empty = unsigned',
          read_only=True),
    Param('station_id', '', 'this station in sidecars and the evidence log; empty = the '
          'host name'),
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
    archive_alert_max_age_s: float
    settle_s: float
    cut_deadline_s: float
    ffmpeg_path: str
    check_period_s: float
    health_window_s: float
    evidence_key_file: str
    station_id: str

    def validate(self) -> None:
        """Cross-parameter checks; raises ParameterError."""
        if self.pre_window_s + self.post_window_s <= 0:
            raise ParameterError('post_window_s', 'pre_window_s + post_window_s must be > 0')
        if self.cut_deadline_s < self.segment_s + self.settle_s:
            raise ParameterError('cut_deadline_s', 'must be at least segment_s + settle_s '
                                 f'({self.segment_s + self.settle_s:g} s): the recorder '
                                 'needs that long to close the segment holding T0 + post')

    @property
    def archive_policy(self) -> archive.ArchivePolicy:
        return archive.ArchivePolicy(self.archive_max_count, self.archive_max_bytes,
                                     self.archive_max_age_s, self.archive_alert_max_age_s)


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
        for line in make_dirs(archive_dir=s.archive_dir, state_dir=s.state_dir):
            self.get_logger().info(line)
        signer = None
        if s.evidence_key_file:
            try:
                signer = evidence_log.load_evidence_key(s.evidence_key_file)
            except evidence_log.KeyConfigError as exc:
                raise ParameterError('evidence_key_file', str(exc)) from None
        self.station = s.station_id or socket.gethostname()
        self.log = evidence_log.EvidenceLog(s.archive_dir, signer, self.station)
        evidence_log.write_signer_file(s.archive_dir, s.evidence_key_file, self.station)
        if self.log.unreadable:
            self.get_logger().error(f'evidence log {self.log.path}: {self.log.unreadable} '
                                    'line(s) are no record: run v2x_verify_evidence')
        if signer is None:
            self.get_logger().warning('no evidence_key_file: clips and the evidence log are '
                                      'not signed')
        self.store = PendingStore(s.state_dir)
        self._write_settings_file()
        loaded, problems = self.store.load()
        for problem in problems:
            self.get_logger().error(f'persisted clip request set aside: {problem}')
        self.pending: dict[str, clips.ClipRequest] = {pending_key(r): r for r in loaded}
        self._running: dict[str, Future] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='clip')
        self.counts = {'published': 0, 'failed': 0, 'no_footage': 0, 'with_gaps': 0,
                       'rejected': 0, 'duplicates': 0, 'archive_deleted': 0,
                       'archive_deleted_evidence': 0, 'archive_delete_errors': 0,
                       'save_failed': 0, 'set_aside': len(problems), 'internal_errors': 0,
                       'already_clipped': 0, 'log_errors': 0}
        # Health judges the last health_window_s; the counts above are lifetime totals.
        self.recent = {kind: RecentEvents(s.health_window_s)
                       for kind in ('failed', 'save_failed', 'archive', 'internal', 'log')}
        self.last_deleted = ''
        self.over_cap = ''  # held evidence exceeds a cap: what, for the operator
        self._last_archive = 0.0
        self.pub = self.create_publisher(Clip, 'v2x/clip', qos.CLIP)
        self.sub = self.create_subscription(Alert, 'v2x/alert_sent', self._on_alert,
                                            qos.ALERT_SENT_CLIPPER)
        self.srv = self.create_service(RequestClip, 'v2x/request_clip', self._on_request)
        self.diag = Diagnostics(self, status_fn=self._health)
        self._timer = self.create_timer(s.check_period_s, self._tick)
        self.get_logger().info(
            f'clipping {s.recording_dir} -> {s.archive_dir} (pre {s.pre_window_s:g} s, post '
            f'{s.post_window_s:g} s); {len(self.pending)} pending clip(s) resumed')

    def _write_settings_file(self) -> None:
        """Tell v2x_make_clip (direct mode) the windows and directories this node uses."""
        s = self.settings
        path = os.path.join(s.state_dir, CLIPPER_SETTINGS_FILE)
        try:
            write_json_atomic(path, {
                'recording_dir': os.path.abspath(s.recording_dir),
                'archive_dir': os.path.abspath(s.archive_dir),
                'pre_window_s': s.pre_window_s, 'post_window_s': s.post_window_s,
                'segment_s': s.segment_s, 'cut_deadline_s': s.cut_deadline_s,
                'evidence_key_file': os.path.abspath(s.evidence_key_file)
                if s.evidence_key_file else '', 'station_id': self.station})
        except OSError as exc:
            self.get_logger().warning(f'cannot write {path} (v2x_make_clip --direct will not '
                                      f'know these windows): {exc}')

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
        """Queue a clip (persisted at once); an event already queued or already clipped (in
        the evidence log) is not queued again."""
        key = pending_key(request)
        if key in self.pending:
            self.counts['duplicates'] += 1
            return True, f'clip {request.clip_id} already pending'
        done = self.log.refresh().events.get(evidence.event_key(clips.request_event(request)))
        if done:
            self.counts['already_clipped'] += 1
            return True, f'event already clipped: {done}'
        self.pending[key] = request
        problem = self._save()
        if problem:
            # Not persisted: refused, so that no caller counts on a clip a restart loses.
            del self.pending[key]
            self.get_logger().error(f'clip {request.clip_id} refused: {problem}',
                                    throttle_duration_sec=5.0)
            return False, f'refused: {problem}'
        due = clips.due_at(request, self.settings.cut_deadline_s)
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
            problem = f'cannot save pending clips to {self.store.path}: {exc}'
            self.recent['save_failed'].add(problem)
            return problem
        return ''

    # --- the work ----------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            self._check(time.time())
        except Exception as exc:  # noqa: B902 -- a bug must not kill the node in a loop
            self.counts['internal_errors'] += 1
            self.recent['internal'].add(f'{type(exc).__name__}: {exc}')
            self.get_logger().error(f'clip check failed: {exc!r}\n{traceback.format_exc()}',
                                    throttle_duration_sec=10.0)

    def _check(self, now: float) -> None:
        for key, future in list(self._running.items()):
            if future.done():
                del self._running[key]
                self._finish(key, self.pending.get(key), future)
        waiting = [(k, r) for k, r in self.pending.items() if k not in self._running]
        starts = [seg.start for seg in segments.scan(self.settings.recording_dir)] \
            if waiting else []
        for key, request in waiting:
            if clips.is_due(request, now, self.settings.settle_s,
                            clips.first_start_after(starts, request.hi),
                            self.settings.cut_deadline_s):
                self._running[key] = self._worker.submit(
                    cutter.cut_clip, request, self.settings.recording_dir,
                    self.settings.archive_dir, self.tools, log=self.log)
        if now - self._last_archive > ARCHIVE_PERIOD_S:
            self._enforce_archive(now)

    def _finish(self, key: str, request: clips.ClipRequest | None, future: Future) -> None:
        if request is None:
            return
        exc = future.exception()
        if exc is not None:
            # Whatever broke the cut (a bug, a bad request), the clip is answered with the
            # error and its request set aside with the reason: never retried in a loop.
            reason = f'cutting failed: {type(exc).__name__}: {exc}'
            self.get_logger().error(f'clip {request.clip_id}: {reason}')
            self._set_aside(request, reason)
            result = clips.ClipResult(request.clip_id, request.t0, '', '', 0.0, (), reason)
        else:
            result = future.result()
        self.pub.publish(conversions.clip_to_msg(result))
        self.counts['published'] += 1
        if result.error:  # no footage: a sidecar listing no segments
            no_footage = result.sidecar.get('segments') == []
            self.counts['no_footage' if no_footage else 'failed'] += 1
            if not no_footage:
                self.recent['failed'].add(result.error)
        if result.gaps:
            self.counts['with_gaps'] += 1
        if result.error:
            self.get_logger().warning(f'clip {result.clip_id}: {result.error}')
        else:
            self.get_logger().info(
                f'clip {result.clip_id} ready: {result.path} ({result.duration_s:.1f} s'
                + (f', {len(result.gaps)} gap(s)' if result.gaps else '') + ')')
        self.pending.pop(key, None)
        problem = self._save()
        if problem:  # the clip is out; a restart may cut it again
            self.get_logger().error(problem, throttle_duration_sec=5.0)
        self._enforce_archive(time.time())

    def _set_aside(self, request: clips.ClipRequest, reason: str) -> None:
        try:
            self.store.set_aside(request.to_json(), reason)
        except OSError as exc:
            self.get_logger().error(f'cannot set clip request {request.clip_id} aside: {exc}')
        self.counts['set_aside'] += 1

    def _enforce_archive(self, now: float) -> None:
        """Apply retention; each deletion is logged with its reason, evidence as a warning."""
        self._last_archive = now
        protected = {r.stem for r in self.pending.values()}
        held = self.log.refresh().held
        found = archive.scan_archive(self.settings.archive_dir)
        doomed = archive.plan_archive_deletions(found, now, self.settings.archive_policy,
                                                protected, held)
        over = archive.over_cap(found, doomed, self.settings.archive_policy, held)
        if over and over != self.over_cap:
            self.get_logger().error(f'{over}; new clips are still cut')
        self.over_cap = over
        for clip, reason in doomed:
            problems = archive.delete_clip(clip)
            if problems:
                self.counts['archive_delete_errors'] += 1
                self.recent['archive'].add(f'cannot delete {clip.stem}: {problems[0]}')
                self.get_logger().error(f'archive: cannot delete {clip.stem} ({reason}): '
                                        + '; '.join(problems), throttle_duration_sec=10.0)
                continue
            self.counts['archive_deleted'] += 1
            what = 'evidence of an alert' if clip.is_evidence else f'{clip.origin} clip'
            self._log_record(evidence.DELETE, stem=clip.stem, reason=reason, what=what,
                             files=[os.path.basename(f) for f in clip.files])
            self.last_deleted = f'{clip.stem} ({what}, {reason})'
            if clip.is_evidence:
                self.counts['archive_deleted_evidence'] += 1
                self.get_logger().warning(
                    f'archive: deleted {self.last_deleted}: the {reason} cap left no other '
                    'clip to delete; raise archive_max_count / archive_max_bytes')
            else:
                self.get_logger().info(f'archive: deleted {self.last_deleted}')

    def _log_record(self, kind: str, **fields) -> None:
        """Append to the evidence log; a failure is counted and logged as an ERROR."""
        try:
            self.log.append(kind, **fields)
        except OSError as exc:
            self.counts['log_errors'] += 1
            self.recent['log'].add(f'cannot append to {self.log.path}: {exc}')
            self.get_logger().error(f'evidence log: cannot record {kind} {fields}: {exc}',
                                    throttle_duration_sec=10.0)

    # --- health ------------------------------------------------------------------------

    def _health(self):
        recent = {kind: events.count() for kind, events in self.recent.items()}
        values = dict(self.counts, pending=len(self.pending), cutting=len(self._running),
                      ffmpeg=self.tools.ffmpeg, last_deleted=self.last_deleted,
                      over_cap=self.over_cap, held=len(self.log.state.held),
                      evidence_log_index=self.log.state.next_index - 1,
                      signed=bool(self.log.key_id),
                      health_window_s=self.settings.health_window_s,
                      **{f'recent_{kind}': n for kind, n in recent.items()})
        window = f'in the last {self.settings.health_window_s:g} s'
        if self.over_cap:
            return ERROR, self.over_cap, values
        for kind, level, what in (('internal', ERROR, 'internal error(s)'),
                                  ('log', ERROR, 'evidence log write(s) failed'),
                                  ('save_failed', WARN, 'save(s) of pending clips failed'),
                                  ('archive', WARN, 'archive deletion(s) failed'),
                                  ('failed', WARN, 'clip(s) failed')):
            if recent[kind]:
                return level, f'{recent[kind]} {what} {window}: ' \
                              f'{self.recent[kind].last}', values
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


def pending_key(request: clips.ClipRequest) -> str:
    """What makes two requests the same clip: the event of an alert (source_id, origin,
    sequence), else the clip_id."""
    return evidence.event_key(clips.request_event(request)) or f'id:{request.clip_id}'


def main(args=None):
    """Run event_clipper until shut down; exits non-zero on a bad start-up."""
    return run_node(NODE_NAME, EventClipper, args,
                    {ffmpeg_tools.FfmpegNotFound: EXIT_MISSING_TOOL})


if __name__ == '__main__':
    sys.exit(main())
