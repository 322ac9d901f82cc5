"""The persisted sequence counter per source id (state_dir/sequence.json).

Written atomically (temp file + rename) on each assignment so a restart continues the
count and the file is never half-written.
"""

import json
import os
from pathlib import Path


class SequenceStore:
    """next(source_id) -> 1, 2, 3, ... persisted across restarts."""

    FILE = 'sequence.json'

    def __init__(self, state_dir: str | Path):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / self.FILE
        self._last: dict[str, int] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding='utf-8'))
            except (OSError, ValueError) as exc:
                raise ValueError(f'state file {self.path} is unreadable: {exc}') from None
            if not isinstance(data, dict):
                raise ValueError(f'state file {self.path} is not a JSON object')
            self._last = {str(k): int(v) for k, v in data.items()}

    def peek(self, source_id: str) -> int:
        """The last sequence handed out for source_id (0 when none)."""
        return self._last.get(source_id, 0)

    def next(self, source_id: str) -> int:
        """The next sequence for source_id (wraps within 1..2^32-1), persisted first."""
        seq = self._last.get(source_id, 0) % 0xFFFFFFFF + 1
        self._last[source_id] = seq
        tmp = self.path.with_name(self.path.name + '.tmp')
        tmp.write_text(json.dumps(self._last, sort_keys=True), encoding='utf-8')
        os.replace(tmp, self.path)
        return seq
