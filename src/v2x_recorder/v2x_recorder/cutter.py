"""Cut one evidence clip from the recording dir into the archive (no rclpy).

Used by event_clipper (in its worker thread) and by v2x_make_clip when no node runs.
Writes accident_<T0>_<id>.mp4 (stream copy through the concat demuxer, first to a
``.part`` file, renamed when complete) and its .json sidecar; with no footage at all,
only the sidecar, carrying the error.

The segments of the plan are opened before ffmpeg starts and handed to it as open file
descriptors (/proc/self/fd/N), so the recorder's ring may delete them meanwhile (its byte
cap under a long window): the clip is cut from what existed when it was planned.
"""

import contextlib
import json
import os
import subprocess
import tempfile
import time
from typing import Callable

from v2x_common.files import sha256_file, write_atomic
from v2x_evidence.log import EvidenceLog
from v2x_recorder import mp4, segments
from v2x_recorder.clips import (
    ClipPlan,
    ClipRequest,
    ClipResult,
    concat_list,
    make_sidecar,
    plan_clip,
    result_from_sidecar,
    with_shortfall,
)
from v2x_recorder.ffmpeg_tools import FfmpegTools, probe_duration, segment_timing

PART_SUFFIX = '.part'
#: Planning is retried this often when a planned segment is deleted before it is opened.
PLAN_ATTEMPTS = 3


def plan_from_dir(request: ClipRequest, recording_dir: str,
                  tools: FfmpegTools | None = None) -> ClipPlan:
    """The plan of request over the segments now in recording_dir (durations read)."""
    found = segments.candidates(segments.scan(recording_dir), request.lo, request.hi)
    timed = segments.with_timing(found, lambda p: segment_timing(p, tools))
    return plan_clip(request, timed)


def missing_recording_dir(recording_dir: str) -> str:
    """'' when recording_dir is a directory, else what is wrong and how to fix it."""
    if os.path.isdir(recording_dir):
        return ''
    what = 'is not a directory' if os.path.exists(recording_dir) else 'does not exist'
    return (f'recording dir {recording_dir} {what}: is segment_recorder running with '
            f'recording_dir:={recording_dir}? (event_clipper and segment_recorder must '
            'name the same directory)')


def cut_clip(request: ClipRequest, recording_dir: str, archive_dir: str, tools: FfmpegTools,
             clock: Callable[[], float] = time.time,
             log: EvidenceLog | None = None) -> ClipResult:
    """Cut request into archive_dir; always writes a sidecar and returns what it says.

    With log (the archive's evidence log), the sidecar is signed (its .sig file) and the
    clip appended to the log; a failure of that is the clip's error (OSError).
    """
    os.makedirs(archive_dir, exist_ok=True)
    video = os.path.abspath(os.path.join(archive_dir, request.stem + '.mp4'))
    sidecar_path = os.path.join(archive_dir, request.stem + '.json')
    path, sha, duration = '', '', 0.0
    with contextlib.ExitStack() as stack:
        plan, fds = _plan_and_open(request, recording_dir, tools, stack)
        if not plan.pieces:
            error = (missing_recording_dir(recording_dir)
                     or f'no footage in {recording_dir} for the window')
        else:
            error = run_concat(plan, video, tools, fds)
            if not error:
                path, sha = video, sha256_file(video)
                duration = _output_duration(video, tools)
                plan = with_shortfall(plan, duration)
    station, key_id = (log.station, log.key_id) if log is not None else ('', '')
    sidecar = make_sidecar(plan, path, sha, duration, error, clock(), station, key_id)
    data = sidecar_bytes(sidecar)
    write_atomic(sidecar_path, data)
    if log is not None:
        log.record_clip(request.stem, data, sidecar)
    return result_from_sidecar(sidecar, sidecar_path)


def sidecar_bytes(sidecar: dict) -> bytes:
    """The bytes of a sidecar file (what its signature covers)."""
    return (json.dumps(sidecar, indent=1, sort_keys=True) + '\n').encode('utf-8')


def _plan_and_open(request: ClipRequest, recording_dir: str, tools: FfmpegTools,
                   stack: contextlib.ExitStack) -> tuple[ClipPlan, dict[str, int]]:
    """The plan and an open descriptor of each of its segments (closed by stack)."""
    for attempt in range(PLAN_ATTEMPTS):
        plan = plan_from_dir(request, recording_dir, tools)
        fds: dict[str, int] = {}
        try:
            for piece in plan.pieces:
                fds[piece.path] = os.open(piece.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # deleted by the ring since the scan: plan again
            for fd in fds.values():
                os.close(fd)
            if attempt + 1 < PLAN_ATTEMPTS:
                continue
            fds = {}
            plan = plan_clip(request, [])
        for fd in fds.values():
            stack.callback(os.close, fd)
        return plan, fds
    raise AssertionError('unreachable')


def concat_command(ffmpeg: str, list_path: str, out_path: str) -> list[str]:
    """Stream-copy concat of an ffconcat list into an MP4 file."""
    return [ffmpeg, '-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
            '-f', 'concat', '-safe', '0', '-i', list_path,
            '-map', '0', '-c', 'copy', '-f', 'mp4', out_path]


def run_concat(plan: ClipPlan, out_path: str, tools: FfmpegTools,
               fds: dict[str, int] | None = None) -> str:
    """Run ffmpeg for plan into out_path (via .part); '' on success, else the error.

    fds: open descriptors of the plan's segments; ffmpeg reads those (/proc/self/fd/N),
    which outlive a deletion of the files.
    """
    fds = fds or {}
    directory = os.path.dirname(out_path)
    part = out_path + PART_SUFFIX
    fd, list_path = tempfile.mkstemp(dir=directory, prefix='.concat-', suffix='.ffconcat')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(concat_list(plan.pieces, {p: f'/proc/self/fd/{n}' for p, n in fds.items()}))
        timeout = max(60.0, plan.request.pre_s + plan.request.post_s)
        try:
            proc = subprocess.run(concat_command(tools.ffmpeg, list_path, part),
                                  capture_output=True, text=True, timeout=timeout, check=False,
                                  pass_fds=tuple(fds.values()))
        except subprocess.TimeoutExpired:
            return f'ffmpeg concat took longer than {timeout:g} s'
        if proc.returncode != 0 or not os.path.exists(part):
            last = (proc.stderr.strip().splitlines() or ['no output'])[-1]
            return f'ffmpeg concat failed (exit {proc.returncode}): {last}'
        os.replace(part, out_path)
        return ''
    finally:
        for leftover in (list_path, part):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _output_duration(path: str, tools: FfmpegTools) -> float:
    try:
        return mp4.duration_s(path)
    except mp4.Mp4Error:
        return probe_duration(path, tools) or 0.0
