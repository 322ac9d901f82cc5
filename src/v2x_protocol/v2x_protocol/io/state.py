"""The station's persisted identity and sequence counters (state_dir/sequence.json).

The file holds the station instance's `origin` (a random u64 drawn once, the wire's origin
field: an event is (source_id, origin, sequence)) and, per source id, a reserved ceiling:
sequences up to it may have been handed out. Every process using the same state_dir (the
gateway, v2x_alert_server) takes the file lock (fcntl.flock on sequence.lock) and re-reads
the file before reserving the next block of `block` sequences, so two processes never hand
out the same sequence; a restart continues above everything ever reserved (leaving a gap of
at most `block`) and a file write happens once per block, not per alert. Writes are atomic
and durable (v2x_common.files.write_json_atomic).
"""

import contextlib
import fcntl
import json
import os
from pathlib import Path
import secrets

from v2x_common.files import write_json_atomic
from v2x_protocol.receiver import Receiver
from v2x_protocol.wire import AlertData

__all__ = ['MAX_SEQUENCE', 'HighWaterFile', 'OutboxFile', 'SentEvents', 'SequenceStore',
           'locked']

MAX_SEQUENCE = 0xFFFFFFFF


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive fcntl.flock on path (created if missing) for the with-block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class SequenceStore:
    """next(source_id) -> 1, 2, 3, ... persisted across restarts and shared (locked) by
    every process using the same state_dir; origin: this station instance's u64."""

    FILE = 'sequence.json'
    LOCK = 'sequence.lock'

    def __init__(self, state_dir: str | Path, block: int = 64):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / self.FILE
        self.lock_path = self.dir / self.LOCK
        self.block = max(1, block)
        self._last: dict[str, int] = {}
        self._ceiling: dict[str, int] = {}
        with locked(self.lock_path):
            origin, ceilings = self._read()
            if origin is None:
                origin = secrets.randbits(64) or 1
                write_json_atomic(self.path, {'origin': f'{origin:016x}', 'ceilings': ceilings})
        self.origin = origin
        self._ceiling = dict(ceilings)
        self._last = dict(ceilings)

    def _read(self) -> tuple[int | None, dict[str, int]]:
        if not self.path.exists():
            return None, {}
        try:
            data = json.loads(self.path.read_text(encoding='utf-8'))
            if 'ceilings' not in data:  # the v1 file: a flat {source_id: ceiling}
                return None, {str(k): int(v) for k, v in data.items()}
            origin = int(data['origin'], 16)
            return origin, {str(k): int(v) for k, v in data['ceilings'].items()}
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f'state file {self.path} is unreadable: {exc}') from None

    def peek(self, source_id: str) -> int:
        """The last sequence handed out (after a restart: the reserved ceiling; 0 when none)."""
        return self._last.get(source_id, 0)

    def next(self, source_id: str) -> int:
        """The next sequence for source_id (wraps within 1..2^32-1); reserved first."""
        seq = self._last.get(source_id, 0) % MAX_SEQUENCE + 1
        if seq > self._ceiling.get(source_id, 0) or seq == 1:
            with locked(self.lock_path):
                _, ceilings = self._read()
                shared = ceilings.get(source_id, 0)  # what other processes reserved
                if seq <= shared and seq != 1 or (seq == 1 and 0 < shared < MAX_SEQUENCE):
                    seq = shared % MAX_SEQUENCE + 1
                ceilings[source_id] = min(seq + self.block - 1, MAX_SEQUENCE)
                write_json_atomic(self.path, {'origin': f'{self.origin:016x}',
                                             'ceilings': ceilings})
            self._ceiling[source_id] = ceilings[source_id]
        self._last[source_id] = seq
        return seq


class SentEvents:
    """The last version of each event a CLI tool sent (state_dir/sent.json, locked like
    the sequences), so a later --cancel carries the event's own fields; expired ones drop."""

    FILE = 'sent.json'

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / self.FILE
        self.lock_path = Path(state_dir) / SequenceStore.LOCK

    def _load(self, now_ns: int) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding='utf-8'))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        out = {}
        for name, entry in data.items():
            try:
                if AlertData(**entry).expires_ns > now_ns:
                    out[name] = entry
            except TypeError:
                continue
        return out

    def record(self, alert: AlertData, now_ns: int) -> None:
        """Keep alert as its event's latest version."""
        with locked(self.lock_path):
            data = self._load(now_ns)
            data[f'{alert.sequence}:{alert.source_id}'] = vars(alert)
            write_json_atomic(self.path, data)

    def lookup(self, key: tuple[str, int], now_ns: int) -> AlertData | None:
        """The live event (source_id, sequence), if this state_dir sent it."""
        entry = self._load(now_ns).get(f'{key[1]}:{key[0]}')
        return None if entry is None else AlertData(**entry)


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


class HighWaterFile:
    """The receiver's high-water marks (state_dir/high_water.json, docs/protocol.md "The
    state directory"): {"<auth>:<key id hex>:<source_id>": <send time ns>}, written
    atomically and durably; an unreadable file reads as no marks."""

    FILE = 'high_water.json'

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / self.FILE

    def load(self) -> dict[tuple[str, int, bytes], int]:
        """The marks for Receiver(high_water=...) ({} when there is no usable file)."""
        try:
            data = json.loads(self.path.read_text(encoding='utf-8'))
        except (OSError, ValueError):
            return {}
        return Receiver.high_water_from_state(data if isinstance(data, dict) else {})

    def save(self, marks) -> None:
        """Write the receiver's marks: a Receiver, or its high_water_state() taken under
        the caller's lock (the gateway writes on its state-writer thread)."""
        if isinstance(marks, Receiver):
            marks = marks.high_water_state()
        write_json_atomic(self.path, marks)
