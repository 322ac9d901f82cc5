"""Retention of the clip archive: capped by count, bytes and age, oldest first.

A clip is its accident_<T0>_<id>.mp4 and .json sidecar together (or the sidecar alone when
no footage existed). Files still being written (``.part``) are never listed, and the
caller names the clips in progress as protected.
"""

from dataclasses import dataclass
import os
from typing import Iterable, Sequence

from v2x_recorder.clips import ARCHIVE_PREFIX


@dataclass(frozen=True)
class ArchivedClip:
    """One archived clip: its stem, files, total size and newest modification time."""

    stem: str
    files: tuple[str, ...]
    size: int
    mtime: float


@dataclass(frozen=True)
class ArchivePolicy:
    """Limits of the archive; 0 means no limit of that kind."""

    max_count: int
    max_bytes: int
    max_age_s: float


def scan_archive(directory: str) -> list[ArchivedClip]:
    """The clips in directory, oldest first (by newest file modification time)."""
    groups: dict[str, list[tuple[str, int, float]]] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        if not stem.startswith(ARCHIVE_PREFIX) or ext not in ('.mp4', '.json'):
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        groups.setdefault(stem, []).append((entry.path, st.st_size, st.st_mtime))
    clips = [ArchivedClip(stem, tuple(sorted(f[0] for f in files)),
                          sum(f[1] for f in files), max(f[2] for f in files))
             for stem, files in groups.items()]
    return sorted(clips, key=lambda c: (c.mtime, c.stem))


def plan_archive_deletions(clips: Sequence[ArchivedClip], now: float, policy: ArchivePolicy,
                           protected: Iterable[str] = ()) -> list[tuple[ArchivedClip, str]]:
    """(clip, reason) to delete, oldest first; reason is 'age', 'count' or 'bytes'."""
    keep_out = set(protected)
    candidates = [c for c in clips if c.stem not in keep_out]
    doomed: list[tuple[ArchivedClip, str]] = []
    count = len(clips)
    total = sum(c.size for c in clips)
    for clip in candidates:  # oldest first
        reason = None
        if policy.max_age_s > 0 and now - clip.mtime > policy.max_age_s:
            reason = 'age'
        elif policy.max_count > 0 and count > policy.max_count:
            reason = 'count'
        elif policy.max_bytes > 0 and total > policy.max_bytes:
            reason = 'bytes'
        if reason is None:
            continue
        doomed.append((clip, reason))
        count -= 1
        total -= clip.size
    return doomed


def delete_clip(clip: ArchivedClip) -> None:
    """Remove a clip's files (already gone is fine)."""
    for path in clip.files:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
