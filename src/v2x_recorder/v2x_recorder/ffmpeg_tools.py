"""Finding ffmpeg/ffprobe, reading media durations, and the recorder's ffmpeg command line.

No rclpy here: the nodes and the CLI pass their settings in. Discovery order: an explicit
path (parameter), the system's ffmpeg on PATH (installed by the setup), then the static
binary of the imageio-ffmpeg wheel. That wheel ships no ffprobe; durations are then read
with ``ffmpeg -i`` itself.
"""

from dataclasses import dataclass
import os
import re
import shutil
import subprocess

from v2x_recorder import mp4


class FfmpegNotFound(RuntimeError):
    """No usable ffmpeg binary: the operator must install one or name it."""


@dataclass(frozen=True)
class FfmpegTools:
    """The binaries to run; ffprobe is None when only ffmpeg was found."""

    ffmpeg: str
    ffprobe: str | None


def find_ffmpeg(explicit: str = '', path: str | None = None,
                use_imageio: bool = True) -> FfmpegTools:
    """Locate ffmpeg (and ffprobe beside it or on PATH); raises FfmpegNotFound."""
    if explicit:
        exe = shutil.which(explicit, path=path) if os.sep not in explicit else explicit
        if not exe or not os.access(exe, os.X_OK):
            raise FfmpegNotFound(f'ffmpeg_path {explicit!r} is not an executable file')
        return FfmpegTools(exe, _ffprobe_beside(exe, path))
    exe = shutil.which('ffmpeg', path=path)
    if exe:
        return FfmpegTools(exe, _ffprobe_beside(exe, path))
    if use_imageio:
        try:
            import imageio_ffmpeg
            exe = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            exe = None
        if exe and os.access(exe, os.X_OK):
            return FfmpegTools(exe, shutil.which('ffprobe', path=path))
    raise FfmpegNotFound(
        'no ffmpeg found: install the system package (apt-get install ffmpeg), '
        'pip install imageio-ffmpeg, or set the ffmpeg_path parameter')


def _ffprobe_beside(ffmpeg: str, path: str | None) -> str | None:
    sibling = os.path.join(os.path.dirname(ffmpeg), 'ffprobe')
    if os.access(sibling, os.X_OK):
        return sibling
    return shutil.which('ffprobe', path=path)


_DURATION_RE = re.compile(r'Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)')


def probe_duration(path: str, tools: FfmpegTools, timeout: float = 30.0) -> float | None:
    """Seconds as ffprobe (without it, ``ffmpeg -i``) reports; None if unreadable."""
    if tools.ffprobe:
        proc = subprocess.run(
            [tools.ffprobe, '-v', 'error', '-show_entries', 'format=duration',
             '-of', 'default=noprint_wrappers=1:nokey=1', path],
            capture_output=True, text=True, timeout=timeout, check=False)
        try:
            return float(proc.stdout.strip()) if proc.returncode == 0 else None
        except ValueError:
            return None
    proc = subprocess.run([tools.ffmpeg, '-hide_banner', '-nostdin', '-i', path],
                          capture_output=True, text=True, timeout=timeout, check=False)
    match = _DURATION_RE.search(proc.stderr)
    if not match or 'Invalid data' in proc.stderr:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def segment_duration(path: str, tools: FfmpegTools | None = None) -> float | None:
    """Duration of a recorded segment: read from its MP4 boxes, ffmpeg as a fallback."""
    return segment_timing(path, tools)[0]


def segment_timing(path: str, tools: FfmpegTools | None = None
                   ) -> tuple[float | None, float | None]:
    """(duration, wall-clock start) of a recorded segment, from its MP4 boxes (the start
    from its producer reference times; None without them); ffmpeg for the duration as a
    fallback."""
    try:
        return mp4.timing(path)
    except mp4.Mp4Error:
        pass
    except OSError:
        return None, None
    return (probe_duration(path, tools) if tools is not None else None), None


# --- the recorder's command line ---------------------------------------------------------

SOURCE_TESTSRC = 'testsrc'
SOURCE_STREAM = 'stream'
SOURCE_DEVICE = 'device'
SOURCE_FILE = 'file'

_STREAM_SCHEMES = ('rtsp://', 'rtsps://', 'rtmp://', 'http://', 'https://', 'srt://', 'udp://')


def source_kind(source: str) -> str:
    """'testsrc', 'stream' (RTSP and other URLs: stream copy), 'device' (/dev/video*), 'file'."""
    if source == SOURCE_TESTSRC or source.startswith('testsrc='):
        return SOURCE_TESTSRC
    if source.lower().startswith(_STREAM_SCHEMES):
        return SOURCE_STREAM
    if source.startswith('/dev/'):
        return SOURCE_DEVICE
    return SOURCE_FILE


@dataclass(frozen=True)
class RecordOptions:
    """What the ffmpeg recording command needs (a subset of segment_recorder's settings)."""

    source: str
    recording_dir: str
    segment_s: float
    local_stream: str = ''
    video_size: str = ''        # WxH; '' keeps the source's (testsrc: 320x240)
    framerate: float = 0.0      # 0 keeps the source's (testsrc: 10)
    keyframe_s: float = 1.0     # keyframe interval when encoding
    x264_preset: str = 'ultrafast'


# Fragmented MP4, one fragment per keyframe, each written out as soon as it is complete
# (flush_packets: else ffmpeg's 32 KiB write buffer holds a low-bitrate segment whole and a
# SIGKILL leaves a 28-byte file): a segment cut short by a crash keeps every complete
# fragment, i.e. all its footage but the last keyframe interval. write_prft=wallclock puts
# a producer reference time (the wall clock) before each fragment: the segment's wall-clock
# anchor (mp4.timing), exact to a few milliseconds where the name holds whole seconds.
SEGMENT_MOVFLAGS = ('movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1'
                    ':write_prft=wallclock')


def record_command(ffmpeg: str, opts: RecordOptions) -> list[str]:
    """The ffmpeg argv that records opts.source into seg_<epoch>.mp4 segments."""
    kind = source_kind(opts.source)
    cmd = [ffmpeg, '-hide_banner', '-nostdin', '-loglevel', 'warning', '-y']
    if kind == SOURCE_TESTSRC:
        spec = opts.source if '=' in opts.source else (
            f'testsrc=size={opts.video_size or "320x240"}:rate={opts.framerate or 10:g}')
        cmd += ['-re', '-f', 'lavfi', '-i', spec]
    elif kind == SOURCE_STREAM:
        if opts.source.lower().startswith(('rtsp://', 'rtsps://')):
            cmd += ['-rtsp_transport', 'tcp']
        cmd += ['-i', opts.source]
    elif kind == SOURCE_DEVICE:
        cmd += ['-f', 'v4l2']
        if opts.video_size:
            cmd += ['-video_size', opts.video_size]
        if opts.framerate:
            cmd += ['-framerate', f'{opts.framerate:g}']
        cmd += ['-i', opts.source]
    else:  # a file behaves like a live camera: real time, looping
        cmd += ['-re', '-stream_loop', '-1', '-i', opts.source]
    cmd += ['-map', '0:v:0', '-an']
    if kind == SOURCE_STREAM:
        cmd += ['-c:v', 'copy']
    else:
        cmd += _encode_args(opts, scale=kind == SOURCE_FILE)
    segment = {
        'segment_time': f'{opts.segment_s:g}',
        'segment_format': 'mp4',
        'segment_format_options': SEGMENT_MOVFLAGS,
        'strftime': '1',
        'reset_timestamps': '1',
    }
    pattern = os.path.join(opts.recording_dir, 'seg_%s.mp4')
    if not opts.local_stream:
        for key, value in segment.items():
            cmd += [f'-{key}', value]
        return cmd + ['-f', 'segment', pattern]
    # One encode, two outputs: the segments and a local MPEG-TS stream for the detector.
    # A failing stream output (nobody listening is fine for UDP) never stops recording.
    seg_opts = ':'.join(f'{k}={_tee_escape(v)}' for k, v in segment.items())
    # The tee muxer unescapes twice (splitting at '|', then each slave's options at ':'):
    # escaped once only, segment_format_options' own ':' would split at the first.
    seg_opts = seg_opts.replace('\\', '\\\\').replace('|', '\\|')
    # dump_extra repeats SPS/PPS at each keyframe so a reader can join the stream any time.
    slaves = (f'[f=segment:{seg_opts}]{pattern}'
              f'|[f=mpegts:onfail=ignore:bsfs/v=dump_extra]{opts.local_stream}')
    return cmd + ['-flags:v', '+global_header', '-f', 'tee', slaves]


def _tee_escape(value: str) -> str:
    return value.replace('\\', '\\\\').replace(':', '\\:').replace('|', '\\|')


def _encode_args(opts: RecordOptions, scale: bool) -> list[str]:
    fps = opts.framerate or 25.0
    gop = max(1, round(opts.keyframe_s * fps))
    args = []
    if scale and opts.video_size:
        args += ['-vf', f'scale={opts.video_size.replace("x", ":")}']
    if opts.framerate and scale:
        args += ['-r', f'{opts.framerate:g}']
    return args + [
        '-c:v', 'libx264', '-preset', opts.x264_preset, '-tune', 'zerolatency',
        '-pix_fmt', 'yuv420p', '-g', str(gop), '-sc_threshold', '0',
        # Keyframes on the segment grid, so segments are segment_s long.
        '-force_key_frames', f'expr:gte(t,n_forced*{opts.keyframe_s:g})',
    ]


# (what ffmpeg says, the cause and the fix) for a recording that fails; first match wins.
_FAILURES = (
    ('No space left on device', 'disk full', 'free space on the recording filesystem '
     '(the ring deletes the oldest footage; lower max_bytes or min_free_bytes)'),
    ('401 Unauthorized', 'the camera refused the credentials',
     'check the user and password in the source URL'),
    ('404 Not Found', 'the camera has no such stream', 'check the path in the source URL'),
    ('Connection refused', 'the camera refused the connection',
     'check the host and port in the source URL and that the camera is on'),
    ('Failed to resolve hostname', "the camera's host name does not resolve",
     "check the host in the source URL or use the camera's IP address"),
    ('Name or service not known', "the camera's host name does not resolve",
     "check the host in the source URL or use the camera's IP address"),
    ('timed out', 'the camera does not answer', 'check its address and the network'),
    ('No route to host', 'the camera is unreachable', 'check its address and the network'),
    ('Network is unreachable', 'the camera is unreachable', 'check the network'),
    ('Device or resource busy', 'the device is open in another program',
     "a V4L2 device opens once: point hazard_detector at the recorder's local_stream"),
    ('Permission denied', 'permission denied',
     "give the node's user access (group video for /dev/video*, the recording dir)"),
    ('No such file or directory', 'no such device or file', 'check source (ls /dev/video*)'),
    ('Invalid data found', 'the source sent nothing ffmpeg reads as video',
     'check that the source URL points at a video stream'),
)


def explain_failure(lines) -> str:
    """'cause: fix' for the ffmpeg output lines of a failed recording; '' when unknown."""
    text = '\n'.join(lines)
    for needle, cause, fix in _FAILURES:
        if needle in text:
            return f'{cause}: {fix}'
    return ''

