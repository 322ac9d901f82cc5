"""The detector's own alert sequence, persisted so a restart continues the count (pure I/O).

The file <state_dir>/sequence_<source_id>.json holds the last sequence handed out; it is
written atomically (temporary file, fsync, rename) before the number is used.
"""

import json
import os
import re
import tempfile

MAX_SEQUENCE = 2 ** 32 - 1  # uint32; 0 means 'the gateway assigns', so we wrap to 1


class SequenceStore:
    """next() -> 1, 2, 3, ... across restarts, per source id."""

    def __init__(self, state_dir: str, source_id: str):
        os.makedirs(state_dir, exist_ok=True)
        safe = re.sub(r'[^A-Za-z0-9_.-]', '_', source_id) or 'default'
        self.path = os.path.join(state_dir, f'sequence_{safe}.json')
        self.last = self._load()

    def _load(self) -> int:
        try:
            with open(self.path, encoding='utf-8') as f:
                value = int(json.load(f)['last'])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f'{self.path} is corrupt: {exc}') from None
        if not 0 <= value <= MAX_SEQUENCE:
            raise ValueError(f'{self.path} holds {value}, outside uint32')
        return value

    def next(self) -> int:
        """The next sequence number, stored before it is returned."""
        value = self.last + 1 if self.last < MAX_SEQUENCE else 1
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix='.seq')
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump({'last': value}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.last = value
        return value
