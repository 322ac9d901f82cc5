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
#: event_clipper's settings as it runs (windows, directories), for v2x_make_clip's defaults.
CLIPPER_SETTINGS_FILE = 'event_clipper_settings.json'


class PendingStore:
    """The persisted list of clip requests not yet cut."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, PENDING_FILE)
        self.state_dir = state_dir

    def load(self) -> tuple[list[ClipRequest], list[str]]:
        """(requests, problems): a corrupt file or record is set aside and reported, never
        fatal (a record that cannot be trusted goes to the set-aside file with its reason)."""
        try:
            with open(self.path, encoding='utf-8') as f:
                data = json.load(f)
        except FileNotFoundError:
            return [], []
        except (OSError, ValueError) as exc:
            aside = self.path + '.corrupt'
            try:
                os.replace(self.path, aside)
            except OSError as why:
                return [], [f'{self.path} unreadable ({exc}); cannot move it aside ({why})']
            return [], [f'{self.path} unreadable ({exc}); moved to {aside}']
        requests, bad = _parse(data)
        problems = []
        for record, reason in bad:
            try:
                self.set_aside(record, reason)
                problems.append(f'{reason}; kept in {self.aside_path}')
            except OSError as exc:
                problems.append(f'{reason}; cannot keep it in {self.aside_path}: {exc}')
        return requests, problems

    @property
    def aside_path(self) -> str:
        """Where requests that cannot be served are kept, one JSON object a line."""
        return self.path + '.rejected'

    def set_aside(self, record, reason: str) -> None:
        """Append a request record that cannot be served, with its reason."""
        with open(self.aside_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps({'reason': reason, 'record': record}, default=repr) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def save(self, requests) -> None:
        """Write the requests atomically."""
        write_json_atomic(self.path, {'version': 1, 'pending': [r.to_json() for r in requests]},
                          indent=1)


def _parse(data) -> tuple[list[ClipRequest], list[tuple[object, str]]]:
    """(requests, [(bad record, reason)])."""
    records = data.get('pending', []) if isinstance(data, dict) else []
    if not isinstance(records, list):
        return [], [(records, 'pending is not a list')]
    requests, bad = [], []
    for record in records:
        try:
            requests.append(ClipRequest.from_json(record))
        except BadClipRequest as exc:
            bad.append((record, str(exc)))
    return requests, bad


def read_windows(state_dir: str) -> list[tuple[float, float]]:
    """The [lo, hi] windows of pending clips (for the recorder's ring); [] when none."""
    # Read-only: the recorder never moves the clipper's file, and skips what it cannot read.
    try:
        with open(os.path.join(state_dir, PENDING_FILE), encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    return [(r.lo, r.hi) for r in _parse(data)[0]]
