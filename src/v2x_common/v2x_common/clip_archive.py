"""The clip archive's files as a listing: which clips are there, their size, age, origin.

The archive is event_clipper's directory of ``accident_<T0>_<clip_id>.mp4`` and its
``.json`` sidecar (docs/recorder.md). The recorder writes and prunes it, the console
lists and serves it: the format they share is read here (file I/O, no ROS).
"""

from dataclasses import dataclass
import json
import os
from typing import Sequence

#: Every archived file's name starts with this (accident_<T0>_<clip_id>).
ARCHIVE_PREFIX = 'accident_'
#: the files of one clip: video, sidecar, the sidecar's signature (docs/recorder.md)
CLIP_EXTENSIONS = ('.mp4', '.json', '.sig')
ALERT_ORIGIN = 'alert'


@dataclass(frozen=True)
class ArchivedClip:
    """One archived clip: its stem, files, total size, newest modification time, origin."""

    stem: str
    files: tuple[str, ...]
    size: int
    mtime: float
    origin: str = ALERT_ORIGIN

    @property
    def is_evidence(self) -> bool:
        """True for a clip of a real alert (or one whose origin is unknown)."""
        return self.origin not in ('service', 'cli')


def _origin(files: Sequence[str]) -> str:
    for path in files:
        if path.endswith('.json'):
            try:
                with open(path, encoding='utf-8') as f:
                    origin = json.load(f).get('origin', ALERT_ORIGIN)
            except (OSError, ValueError, AttributeError):
                return ALERT_ORIGIN
            return str(origin)
    return ALERT_ORIGIN


def scan_archive(directory: str) -> list[ArchivedClip]:
    """The clips in directory, oldest first (by newest file modification time)."""
    groups: dict[str, list[tuple[str, int, float]]] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        if not stem.startswith(ARCHIVE_PREFIX) or ext not in CLIP_EXTENSIONS:
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        groups.setdefault(stem, []).append((entry.path, st.st_size, st.st_mtime))
    clips = []
    for stem, files in groups.items():
        paths = tuple(sorted(f[0] for f in files))
        clips.append(ArchivedClip(stem, paths, sum(f[1] for f in files),
                                  max(f[2] for f in files), _origin(paths)))
    return sorted(clips, key=lambda c: (c.mtime, c.stem))
