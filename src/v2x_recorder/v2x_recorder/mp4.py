"""Duration of an MP4 file read from its boxes (pure Python, no subprocess).

The recorder writes fragmented MP4 segments (moov with an empty sample table, then
moof+mdat pairs), so a segment cut short by a crash keeps every complete fragment. The
clipper needs the duration of dozens of segments per clip; reading a few boxes costs
microseconds where starting ffprobe costs tens of milliseconds. Both layouts are read:

* plain MP4: the movie header (mvhd) duration;
* fragmented MP4: per fragment, the track's decode time (tfdt) plus its sample
  durations (trun, or the defaults of tfhd / trex); a fragment whose mdat is cut off
  by a crash is not counted.

The wall-clock anchor (timing()): the recorder has ffmpeg write a producer reference time
box (prft, ``write_prft=wallclock``) before each fragment: the wall clock (NTP format)
when the fragment was written, which is when the first frame after it arrived. So each
fragment says "media time (its end) was at most this wall time"; the smallest of
``ntp - end`` over a segment's fragments is the wall time of its media time 0 (the
segment's start; the recorder writes each segment from 0), late only by the encoder's
and the muxer's delay for the quickest fragment.
"""

import os
import struct
from typing import BinaryIO, Iterator


class Mp4Error(ValueError):
    """The file is not an MP4 this reader understands (or holds no complete media)."""


# Boxes whose children we read; everything else (mdat above all) is skipped by seeking.
_CONTAINERS = {'moov', 'trak', 'mdia', 'mvex', 'moof', 'traf'}


def _iter_boxes(buf: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of the boxes laid out in buf[start:end]."""
    off = start
    while off + 8 <= end:
        size, raw_type = struct.unpack_from('>I4s', buf, off)
        header = 8
        if size == 1:
            if off + 16 > end:
                return
            size = struct.unpack_from('>Q', buf, off + 8)[0]
            header = 16
        elif size == 0:
            size = end - off
        if size < header or off + size > end:
            return
        yield raw_type.decode('latin-1'), off + header, off + size
        off += size


def _top_level(f: BinaryIO, file_size: int) -> Iterator[tuple[str, int, int]]:
    """(type, payload offset, box end) of the top-level boxes, without reading payloads."""
    off = 0
    while off + 8 <= file_size:
        f.seek(off)
        head = f.read(16)
        if len(head) < 8:
            return
        size, raw_type = struct.unpack_from('>I4s', head, 0)
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            size = struct.unpack_from('>Q', head, 8)[0]
            header = 16
        elif size == 0:
            size = file_size - off
        if size < header:
            return
        yield raw_type.decode('latin-1'), off + header, off + size
        off += size


def _full_box(buf: bytes, start: int) -> tuple[int, int]:
    """(version, flags) of a full box whose payload starts at start."""
    word = struct.unpack_from('>I', buf, start)[0]
    return word >> 24, word & 0xFFFFFF


def _mvhd_seconds(buf: bytes, start: int) -> float:
    version, _ = _full_box(buf, start)
    if version == 1:
        timescale, duration = struct.unpack_from('>IQ', buf, start + 4 + 16)
    else:
        timescale, duration = struct.unpack_from('>II', buf, start + 4 + 8)
    return duration / timescale if timescale else 0.0


class _Movie:
    """What the moov box tells: movie duration, track timescales, trex defaults."""

    def __init__(self, buf: bytes):
        self.seconds = 0.0
        self.timescales: dict[int, int] = {}
        self.default_durations: dict[int, int] = {}
        self._walk(buf, 0, len(buf), track_id=None)

    def _walk(self, buf: bytes, start: int, end: int, track_id):
        for kind, p, e in _iter_boxes(buf, start, end):
            if kind == 'mvhd':
                self.seconds = _mvhd_seconds(buf, p)
            elif kind == 'trak':
                self._walk(buf, p, e, track_id=self._track_id(buf, p, e))
            elif kind == 'mdhd' and track_id is not None:
                version, _ = _full_box(buf, p)
                at = p + 4 + (16 if version == 1 else 8)
                self.timescales[track_id] = struct.unpack_from('>I', buf, at)[0]
            elif kind == 'trex':
                tid, _, default_duration = struct.unpack_from('>III', buf, p + 4)
                self.default_durations[tid] = default_duration
            elif kind in _CONTAINERS:
                self._walk(buf, p, e, track_id)

    @staticmethod
    def _track_id(buf: bytes, start: int, end: int):
        for kind, p, _ in _iter_boxes(buf, start, end):
            if kind == 'tkhd':
                version, _ = _full_box(buf, p)
                return struct.unpack_from('>I', buf, p + 4 + (16 if version == 1 else 8))[0]
        return None


def _traf_end_time(buf: bytes, start: int, end: int, movie: _Movie) -> tuple[int, int] | None:
    """(track id, end decode time in track units) of one track fragment."""
    track_id = None
    default_duration = 0
    base_time = 0
    total = 0
    for kind, p, _ in _iter_boxes(buf, start, end):
        if kind == 'tfhd':
            _, flags = _full_box(buf, p)
            track_id = struct.unpack_from('>I', buf, p + 4)[0]
            default_duration = movie.default_durations.get(track_id, 0)
            at = p + 8
            if flags & 0x1:
                at += 8
            if flags & 0x2:
                at += 4
            if flags & 0x8:
                default_duration = struct.unpack_from('>I', buf, at)[0]
        elif kind == 'tfdt':
            version, _ = _full_box(buf, p)
            fmt = '>Q' if version == 1 else '>I'
            base_time = struct.unpack_from(fmt, buf, p + 4)[0]
        elif kind == 'trun':
            _, flags = _full_box(buf, p)
            count = struct.unpack_from('>I', buf, p + 4)[0]
            at = p + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
            if not flags & 0x100:
                total += count * default_duration
                continue
            stride = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
            for i in range(count):
                total += struct.unpack_from('>I', buf, at + i * stride)[0]
    if track_id is None:
        return None
    return track_id, base_time + total


def duration_s(path: str | os.PathLike) -> float:
    """Seconds of media in an MP4 file; raises Mp4Error when none can be read."""
    return timing(path)[0]


def timing(path: str | os.PathLike) -> tuple[float, float | None]:
    """(seconds of media, the wall-clock time of media time 0 or None) of an MP4 file.

    The start is known when the file carries producer reference times (prft boxes, see
    above). Raises Mp4Error when no media can be read.
    """
    try:
        with open(path, 'rb') as f:
            return _duration(f, os.fstat(f.fileno()).st_size)
    except (struct.error, UnicodeDecodeError) as exc:
        raise Mp4Error(f'{path}: malformed MP4 box ({exc})') from None


#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET_S = 2_208_988_800


def _prft(buf: bytes) -> tuple[int, float]:
    """(reference track id, wall-clock Unix seconds) of a prft payload."""
    track_id, ntp = struct.unpack_from('>IQ', buf, 4)
    return track_id, (ntp >> 32) - NTP_UNIX_OFFSET_S + (ntp & 0xFFFFFFFF) / 2**32


def _duration(f: BinaryIO, file_size: int) -> tuple[float, float | None]:
    movie = None
    fragment_end: dict[int, int] = {}
    pending: list[tuple[int, int]] = []  # fragment times waiting for their mdat
    wall = None  # the prft before the pending fragment: (track id, Unix seconds)
    starts = []  # per complete fragment: its wall time less its end in media time
    for kind, payload, end in _top_level(f, file_size):
        if end > file_size:
            break  # the box was cut off (crash while writing): stop here
        if kind == 'moov':
            f.seek(payload)
            movie = _Movie(f.read(end - payload))
        elif kind == 'prft':
            f.seek(payload)
            wall = _prft(f.read(min(end - payload, 32)))
        elif kind == 'moof' and movie is not None:
            f.seek(payload)
            buf = f.read(end - payload)
            pending = [t for k, p, e in _iter_boxes(buf, 0, len(buf)) if k == 'traf'
                       for t in [_traf_end_time(buf, p, e, movie)] if t is not None]
        elif kind == 'mdat':
            for track_id, t in pending:
                fragment_end[track_id] = max(fragment_end.get(track_id, 0), t)
                scale = movie.timescales.get(track_id) if movie is not None else None
                if wall is not None and wall[0] == track_id and scale:
                    starts.append(wall[1] - t / scale)
            pending, wall = [], None
    if movie is None:
        raise Mp4Error(f'{getattr(f, "name", "file")}: no complete moov box')
    seconds = [t / movie.timescales[tid] for tid, t in fragment_end.items()
               if movie.timescales.get(tid)]
    best = max([movie.seconds, *seconds])
    if best <= 0.0:
        raise Mp4Error(f'{getattr(f, "name", "file")}: no complete media')
    return best, (min(starts) if starts else None)
