"""The persisted sequence counter per source id (state_dir/sequence.json).

The file holds, per source id, a reserved ceiling: sequences up to it may have been handed
out. It is raised in blocks of `block` (written atomically and durably with
v2x_common.files.write_json_atomic) before any sequence above the old ceiling is used, so
a restart continues above everything ever sent (leaving a gap of at most `block`) and a
file write happens once per block, not per alert.
"""

import json
from pathlib import Path

from v2x_common.files import write_json_atomic
from v2x_protocol.wire import AlertData


class SequenceStore:
    """next(source_id) -> 1, 2, 3, ... persisted across restarts."""

    FILE = 'sequence.json'

    def __init__(self, state_dir: str | Path, block: int = 64):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / self.FILE
        self.block = max(1, block)
        self._last: dict[str, int] = {}
        self._ceiling: dict[str, int] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding='utf-8'))
                self._ceiling = {str(k): int(v) for k, v in data.items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f'state file {self.path} is unreadable: {exc}') from None
            self._last = dict(self._ceiling)

    def peek(self, source_id: str) -> int:
        """The last sequence handed out (after a restart: the reserved ceiling; 0 when none)."""
        return self._last.get(source_id, 0)

    def next(self, source_id: str) -> int:
        """The next sequence for source_id (wraps within 1..2^32-1); persisted first."""
        seq = self._last.get(source_id, 0) % 0xFFFFFFFF + 1
        ceiling = self._ceiling.get(source_id, 0)
        if seq > ceiling or seq == 1:
            self._ceiling[source_id] = min(seq + self.block - 1, 0xFFFFFFFF)
            write_json_atomic(self.path, self._ceiling)
        self._last[source_id] = seq
        return seq


class OutboxFile:
    """The RSU's live alerts (state_dir/outbox.json), so a restart keeps repeating them.

    Saved at most once a second when changed (a crash loses at most that second); loading
    skips expired alerts and unreadable entries.
    """

    FILE = 'outbox.json'

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / self.FILE

    def save(self, alerts: list[AlertData]) -> None:
        """Write the alerts atomically and durably."""
        write_json_atomic(self.path, [vars(a) for a in alerts])

    def load(self, now_ns: int) -> list[AlertData]:
        """The alerts still valid at now_ns ([] when there is no usable file)."""
        try:
            entries = json.loads(self.path.read_text(encoding='utf-8'))
        except (OSError, ValueError):
            return []
        out = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                alert = AlertData(**entry)
            except TypeError:
                continue
            if alert.expires_ns > now_ns:
                out.append(alert)
        return out
