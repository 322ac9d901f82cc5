"""Pending clips on disk: they survive a restart of event_clipper, and tell the recorder
which footage must not be deleted yet (pure Python file I/O, no rclpy).

The file is ``<state_dir>/pending_clips.json``: {"version": 1, "pending": [request...]}.
It is replaced atomically and durably (v2x_common.files.write_json_atomic), so a reader
never sees half a file.
"""

import json
import os

from v2x_common.files import write_json_atomic
from v2x_recorder.clips import BadClipRequest, ClipRequest

PENDING_FILE = 'pending_clips.json'


class PendingStore:
    """The persisted list of clip requests not yet cut."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, PENDING_FILE)
        self.state_dir = state_dir

    def load(self) -> tuple[list[ClipRequest], list[str]]:
        """(requests, problems): a corrupt file or record is reported, never fatal."""
        try:
            with open(self.path, encoding='utf-8') as f:
                data = json.load(f)
        except FileNotFoundError:
            return [], []
        except (OSError, ValueError) as exc:
            aside = self.path + '.corrupt'
            os.replace(self.path, aside)
            return [], [f'{self.path} unreadable ({exc}); moved to {aside}']
        return _parse(data)

    def save(self, requests) -> None:
        """Write the requests atomically."""
        write_json_atomic(self.path, {'version': 1, 'pending': [r.to_json() for r in requests]},
                          indent=1)


def _parse(data) -> tuple[list[ClipRequest], list[str]]:
    records = data.get('pending', []) if isinstance(data, dict) else []
    requests, problems = [], []
    for record in records:
        try:
            requests.append(ClipRequest.from_json(record))
        except BadClipRequest as exc:
            problems.append(str(exc))
    return requests, problems


def read_windows(state_dir: str) -> list[tuple[float, float]]:
    """The [lo, hi] windows of pending clips (for the recorder's ring); [] when none."""
    # Read-only: the recorder never moves the clipper's file, and skips what it cannot read.
    try:
        with open(os.path.join(state_dir, PENDING_FILE), encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    return [(r.lo, r.hi) for r in _parse(data)[0]]
