"""segment_recorder: runs and supervises ffmpeg recording the camera into seg_<epoch>.mp4.

The ring lives on disk: segments older than pre_window_s + margin_s are deleted unless a
pending clip (event_clipper's state file) still needs them, and max_bytes is never
exceeded (oldest first). ffmpeg is restarted with backoff when it exits or stalls.
"""

from collections import deque
from dataclasses import dataclass
import functools
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

from rclpy.node import Node

from v2x_common.diagnostics import ERROR, OK, WARN, Diagnostics
from v2x_common.node_main import EXIT_MISSING_TOOL, run_node
from v2x_common.params import (
    Param,
    ParameterError,
    declare_parameters,
    directory,
    ge,
    gt,
    not_empty,
)
from v2x_common.paths import make_dirs
from v2x_common.recent import RecentEvents
from v2x_common.redact import redact_url
from v2x_common.worker import Worker
from v2x_recorder import ffmpeg_tools, pending, segments
from v2x_recorder.supervisor import Action, State, Supervisor

NODE_NAME = 'segment_recorder'

PARAMETERS = (
    Param('source', 'testsrc', 'testsrc (lavfi test pattern), a video file (played in real '
          'time, looped), rtsp://... (stream copy) or /dev/videoN (encoded)', not_empty),
    Param('recording_dir', '/var/rec', 'where seg_<epoch>.mp4 segments are written',
          directory),
    Param('state_dir', '/var/lib/v2x/recorder', "event_clipper's state dir: its pending "
          'clips protect their footage from the ring', directory),
    Param('segment_s', 10.0, 'segment length in seconds', gt(0.0)),
    Param('pre_window_s', 300.0, 'footage kept before now for clips (seconds)', ge(0.0)),
    Param('margin_s', 60.0, 'extra seconds kept beyond pre_window_s (late alerts)',
          ge(0.0)),
    Param('max_bytes', 20_000_000_000, 'byte cap of the recording dir (0 = none); never '
          'exceeded, oldest segments go first', ge(0.0)),
    Param('min_free_bytes', 100_000_000, 'keep at least this much free on the recording '
          'filesystem by deleting footage older than pre_window_s (room for two segments '
          'is always kept, deleting the oldest footage)', ge(0.0)),
    Param('local_stream', '', 'also stream the encoded video here for hazard_detector, e.g. '
          'udp://127.0.0.1:5600 (MPEG-TS); empty = off'),
    Param('video_size', '', 'WxH to encode at (testsrc default 320x240); empty = source size'),
    Param('framerate', 0.0, 'frames per second to encode at; 0 = the source rate',
          ge(0.0)),
    Param('keyframe_s', 1.0, 'keyframe interval when encoding (clip cut precision)', gt(0.0)),
    Param('x264_preset', 'ultrafast', 'libx264 preset when encoding', not_empty),
    Param('ffmpeg_path', '', 'ffmpeg binary; empty = system ffmpeg, then imageio-ffmpeg'),
    Param('restart_backoff_s', 1.0, 'first wait before restarting ffmpeg (doubles)', gt(0.0)),
    Param('restart_backoff_max_s', 30.0, 'longest wait before restarting ffmpeg', gt(0.0)),
    Param('check_period_s', 0.5, 'how often the ring and ffmpeg are checked', gt(0.0)),
    Param('health_window_s', 60.0, 'diagnostics judge the problems of this last stretch '
          '(seconds); lifetime totals stay in the values', gt(0.0)),
)

_SIZE_RE = re.compile(r'^\d{2,5}x\d{2,5}$')


@dataclass(frozen=True)
class RecorderSettings:
    """segment_recorder's parameters, read once and validated."""

    source: str
    recording_dir: str
    state_dir: str
    segment_s: float
    pre_window_s: float
    margin_s: float
    max_bytes: int
    min_free_bytes: int
    local_stream: str
    video_size: str
    framerate: float
    keyframe_s: float
    x264_preset: str
    ffmpeg_path: str
    restart_backoff_s: float
    restart_backoff_max_s: float
    check_period_s: float
    health_window_s: float

    def validate(self) -> None:
        """Cross-parameter checks; raises ParameterError."""
        kind = ffmpeg_tools.source_kind(self.source)
        if kind == ffmpeg_tools.SOURCE_FILE and not os.path.isfile(self.source):
            raise ParameterError('source', f'{self.source!r} is no file, URL, device or testsrc')
        if self.video_size and not _SIZE_RE.match(self.video_size):
            raise ParameterError('video_size', f'must look like 640x480, got {self.video_size!r}')
        if self.local_stream and '://' not in self.local_stream:
            raise ParameterError('local_stream', f'must be a URL such as udp://127.0.0.1:5600, '
                               f'got {self.local_stream!r}')
        if self.keyframe_s > self.segment_s:
            raise ParameterError('keyframe_s', 'must not exceed segment_s')
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ParameterError('restart_backoff_max_s', 'must be >= restart_backoff_s')

    def record_options(self) -> ffmpeg_tools.RecordOptions:
        return ffmpeg_tools.RecordOptions(
            source=self.source, recording_dir=self.recording_dir, segment_s=self.segment_s,
            local_stream=self.local_stream, video_size=self.video_size,
            framerate=self.framerate, keyframe_s=self.keyframe_s,
            x264_preset=self.x264_preset)


def die_with_parent(command: list[str]) -> list[str]:
    """command run through util-linux setpriv so that ffmpeg gets SIGTERM when the node dies
    (even by SIGKILL); without setpriv, command unchanged (a node killed by SIGKILL then
    leaves ffmpeg running until its output fails). No preexec_fn: that is unsafe in a
    threaded process (the child can deadlock before exec)."""
    setpriv = shutil.which('setpriv')
    return [setpriv, '--pdeathsig', 'SIGTERM', '--', *command] if setpriv else command


class SegmentRecorder(Node):
    """Supervises the recording ffmpeg and keeps the on-disk ring bounded."""

    def __init__(self, **kwargs):
        # What destroy_node uses exists before anything can fail: a node whose start-up
        # failed (a bad parameter) is still destroyed.
        self._proc: subprocess.Popen | None = None
        self._drainer: Worker | None = None  # reads the running ffmpeg's stderr
        self.diag: Diagnostics | None = None
        super().__init__(NODE_NAME, **kwargs)
        self.settings = RecorderSettings(**declare_parameters(self, PARAMETERS))
        self.settings.validate()
        self.tools = ffmpeg_tools.find_ffmpeg(self.settings.ffmpeg_path)
        for line in make_dirs(recording_dir=self.settings.recording_dir):
            self.get_logger().info(line)
        s = self.settings
        self.supervisor = Supervisor(s.segment_s, s.restart_backoff_s, s.restart_backoff_max_s)
        self.ring = segments.RingPolicy(keep_s=s.pre_window_s + s.margin_s,
                                        max_bytes=s.max_bytes, recent_s=s.pre_window_s)
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._last_exit = None
        self.deleted = {'age': 0, 'bytes': 0, 'disk': 0}
        self.free_bytes: int | None = None
        self.need_free_bytes = 0
        self.floor_bytes = 0
        self.recent_disk = RecentEvents(s.health_window_s)  # deletions to make room
        self.recent_errors = RecentEvents(s.health_window_s)  # the tick's own failures
        self.protected_lost = 0
        self.delete_errors = 0
        self._ring_bytes = 0
        self._ring_count = 0
        self._newest = ''
        self.dir_problem = ''
        self.last_hint = ''  # cause and fix of the last ffmpeg failure, when known
        self.recent_lost = RecentEvents(s.health_window_s)  # pending footage lost to caps
        self._command = ffmpeg_tools.record_command(self.tools.ffmpeg, s.record_options())
        self.diag = Diagnostics(self, status_fn=self._health)
        self._timer = self.create_timer(s.check_period_s, self._tick)
        self.get_logger().info(
            f'recording {self.redact(s.source)!r} into {s.recording_dir} ({s.segment_s:g} s '
            f'segments, keep {s.pre_window_s + s.margin_s:g} s, cap {s.max_bytes} B) with '
            f'{self.tools.ffmpeg}' + (f'; local stream {self.redact(s.local_stream)}'
                                      if s.local_stream else ''))

    def redact(self, text: str) -> str:
        """text without the credentials of the source (or local_stream) URL, as in a line of
        ffmpeg's stderr that quotes it ('rtsp://user:pass@cam/x: Connection refused')."""
        for url in (self.settings.source, self.settings.local_stream):
            if url and url in text:
                text = text.replace(url, redact_url(url))
        return redact_url(text)

    # --- supervision -------------------------------------------------------------------

    @property
    def ffmpeg_pid(self) -> int | None:
        """The pid of the running ffmpeg (None while waiting to restart)."""
        return self._proc.pid if self._proc is not None else None

    def _tick(self) -> None:
        try:
            self._check()
        except Exception as exc:  # noqa: B902 -- a bug must not stop the recording
            self.recent_errors.add(f'{type(exc).__name__}: {exc}')
            self.get_logger().error(f'recorder check failed: {exc!r}\n'
                                    f'{traceback.format_exc()}', throttle_duration_sec=10.0)

    def _check(self) -> None:
        now = time.monotonic()
        self._ensure_recording_dir()
        found = segments.scan(self.settings.recording_dir)
        # The ring first: on a full disk it makes the room ffmpeg needs to (re)start.
        found = self._apply_ring(found, time.time())
        if self._proc is not None and self._proc.poll() is not None:
            self._on_exit(self._proc.returncode)
        alive = self._proc is not None
        action = self.supervisor.on_tick(now, alive, found[-1].name if found else None)
        if action is Action.START:
            self._start()
        elif action is Action.KILL:
            self.get_logger().warning(f'{self.supervisor.stats.last_reason}; killing ffmpeg')
            self._stop(grace_s=2.0)

    def _ensure_recording_dir(self) -> None:
        """Recreate recording_dir if it went away (say so); a failure is named, not hidden."""
        path = self.settings.recording_dir
        if os.path.isdir(path):
            self.dir_problem = ''
            return
        try:
            os.makedirs(path, exist_ok=True)
            self.get_logger().warning(f'recording dir {path} was missing; created it again')
            self.dir_problem = ''
        except OSError as exc:
            self.dir_problem = f'recording dir {path} is missing and cannot be created ' \
                               f'({exc.strerror}): mount or create it'

    def _start(self) -> None:
        stats = self.supervisor.stats
        if stats.restarts:
            self.get_logger().warning(f'restarting ffmpeg (restart {stats.restarts}; '
                                   f'{stats.last_reason})')
        self._stderr_tail.clear()
        try:
            # Its own session: a Ctrl-C in the terminal reaches the node, which stops
            # ffmpeg cleanly (closing the segment), not ffmpeg directly.
            self._proc = subprocess.Popen(
                die_with_parent(self._command), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                errors='replace', start_new_session=True)
        except OSError as exc:
            self.get_logger().error(f'cannot start ffmpeg: {exc}')
            self._proc = None
            return
        # Supervised: a drain that fails is counted and shown as ERROR (a full stderr pipe
        # would stall ffmpeg, which the supervisor then restarts with a new drain).
        self._drainer = Worker('ffmpeg_stderr', functools.partial(self._drain, self._proc),
                               logger=self.get_logger(), may_finish=True).start()

    def _drain(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self._stderr_tail.append(line.rstrip())

    def _on_exit(self, code: int) -> None:
        self._last_exit = code
        tail = ' | '.join(self.redact(line) for line in list(self._stderr_tail)[-3:])
        tail = tail or 'no output'
        self.last_hint = ffmpeg_tools.explain_failure(self._stderr_tail)
        self.get_logger().warning(f'ffmpeg exited with status {code}: {tail}'
                                  + (f' -- {self.last_hint}' if self.last_hint else ''))
        self._proc = None

    def _stop(self, grace_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # ffmpeg closes the segment it writes
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)

    # --- the ring ----------------------------------------------------------------------

    def _free_bytes(self) -> int | None:
        try:
            st = os.statvfs(self.settings.recording_dir)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _apply_ring(self, found: list[segments.Segment], now: float) -> list[segments.Segment]:
        """Delete what the ring policy says; returns the segments kept."""
        protected = pending.read_windows(self.settings.state_dir)
        finished = found[:-1]
        recent = max((seg.size for seg in finished[-3:]), default=0)
        reserve = int(recent * 1.25)
        self.free_bytes = self._free_bytes()
        # Room to go on recording: two segments as large as the recent ones
        self.floor_bytes = max(2 * reserve, 65_536)
        self.need_free_bytes = max(self.settings.min_free_bytes, self.floor_bytes)
        doomed = segments.plan_ring_deletions(
            found, now, self.ring, protected, reserve, self.free_bytes,
            self.settings.min_free_bytes, self.floor_bytes)
        gone = set()
        for seg, reason in doomed:
            try:
                os.unlink(seg.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.delete_errors += 1
                self.get_logger().warning(f'cannot delete {seg.path}: {exc}',
                                       throttle_duration_sec=10.0)
                continue
            gone.add(seg.path)
            self.deleted[reason] += 1
            end = seg.start + self.settings.segment_s
            if reason == 'disk':
                self.recent_disk.add(seg.name)
            if reason in ('bytes', 'disk') and segments.protected_overlap(seg, end, protected):
                self.protected_lost += 1
                self.recent_lost.add(seg.name)
                why = (f'byte cap {self.settings.max_bytes} B' if reason == 'bytes' else
                       f'a full disk ({self._free_text()})')
                self.get_logger().warning(
                    f'{why} forced deleting {seg.name}, which a pending clip needs',
                    throttle_duration_sec=10.0)
        if gone and any(reason == 'disk' for _, reason in doomed):
            self.get_logger().warning(
                f'disk full: deleted {sum(1 for _, r in doomed if r == "disk")} oldest '
                f'segment(s) to keep recording; {self._free_text()}',
                throttle_duration_sec=10.0)
            self.free_bytes = self._free_bytes()
        kept = [seg for seg in found if seg.path not in gone]
        self._ring_bytes = sum(seg.size for seg in kept)
        self._ring_count = len(kept)
        self._newest = kept[-1].name if kept else ''
        return kept

    def _free_text(self) -> str:
        free = self._free_bytes()
        shown = 'unknown' if free is None else f'{free / 1e6:.1f} MB'
        return (f'{shown} free on {self.settings.recording_dir} (keeping '
                f'{self.need_free_bytes / 1e6:.1f} MB free)')

    # --- health ------------------------------------------------------------------------

    def _health(self):
        sup = self.supervisor
        now = time.monotonic()
        values = {
            'source': self.redact(self.settings.source),
            'ffmpeg': self.tools.ffmpeg,
            'pid': self.ffmpeg_pid or '',
            'starts': sup.stats.starts,
            'restarts': sup.stats.restarts,
            'exits': sup.stats.exits,
            'stalls': sup.stats.stalls,
            'last_exit_status': '' if self._last_exit is None else self._last_exit,
            'last_problem': sup.stats.last_reason,
            'last_problem_fix': self.last_hint,
            'segments': self._ring_count,
            'bytes': self._ring_bytes,
            'newest_segment': self._newest,
            'deleted_by_age': self.deleted['age'],
            'deleted_by_bytes': self.deleted['bytes'],
            'deleted_for_disk_space': self.deleted['disk'],
            'free_bytes': '' if self.free_bytes is None else self.free_bytes,
            'min_free_bytes': self.need_free_bytes,
            'pending_footage_lost': self.protected_lost,
            'delete_errors': self.delete_errors,
        }
        if self._drainer is not None:
            values.update(self._drainer.status())
            if self._drainer.dead:
                return ERROR, f'ffmpeg stderr reader died: {self._drainer.last_error}', values
        disk_full = self.free_bytes is not None and self.free_bytes < self.floor_bytes
        if self.dir_problem:
            return ERROR, self.dir_problem, values
        if sup.state is State.WAITING:
            wait = max(0.0, sup.restart_at - now)
            why = f'disk full: {self._free_text()}' if disk_full or self._no_space() \
                else sup.stats.last_reason + (f'; {self.last_hint}' if self.last_hint else '')
            return ERROR, f'ffmpeg not running ({why}); restart in {wait:.1f} s', values
        if disk_full:
            return ERROR, f'disk full: {self._free_text()}; nothing left to delete', values
        if self.recent_disk.count():
            return WARN, f'disk full: deleted {self.recent_disk.count()} segment(s) in the ' \
                         f'last {self.settings.health_window_s:g} s to keep recording; ' \
                         f'{self._free_text()}', values
        if self.recent_errors.count():
            return WARN, f'recorder check failed: {self.recent_errors.last}', values
        idle = sup.seconds_since_progress(now)
        if idle > 2 * self.settings.segment_s:
            return WARN, f'no new segment for {idle:.1f} s', values
        if self.recent_lost.count():
            return WARN, 'byte cap deleted footage a pending clip needed', values
        return OK, 'recording', values

    def _no_space(self) -> bool:
        return any('No space left' in line for line in list(self._stderr_tail))

    def destroy_node(self):
        self._stop()
        diag, self.diag = self.diag, None
        if diag is not None:
            diag.destroy()
        return super().destroy_node()


def main(args=None):
    """Run segment_recorder until shut down; exits non-zero on a bad start-up."""
    return run_node(NODE_NAME, SegmentRecorder, args,
                    {ffmpeg_tools.FfmpegNotFound: EXIT_MISSING_TOOL})


if __name__ == '__main__':
    sys.exit(main())
