"""The exactly-once ledger of event_intake: a small SQLite outbox (stdlib sqlite3, WAL).

One row per accepted event, keyed by ``id:<event_id>`` or, for a file without an
event_id, ``sha256:<hash of its bytes>``. A row is written (state ``pending``, with the
full event) BEFORE the event is published and before its file is moved; it becomes
``published`` right after the publish call returns. So after any crash:

* the file is still in the events directory and no row exists: it is processed anew;
* a ``pending`` row exists: the event is published from the row at start-up, and the
  file (if still there) is moved without a second publish;
* a ``published`` row exists: the file is only moved; an HTTP retry answers duplicate.

The only window left for a duplicate is between the publish call returning and the
``published`` commit (microseconds); nothing accepted is ever lost.
"""

from dataclasses import dataclass
import json
import os
import sqlite3
import threading
from typing import Any

PENDING = 'pending'
PUBLISHED = 'published'
EXPIRED = 'expired'

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    origin TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    published_at REAL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_state ON events(state);
"""


@dataclass(frozen=True)
class LedgerRow:
    """One accepted event as stored."""

    key: str
    origin: str
    source: str
    state: str
    accepted_at: float
    published_at: float | None
    record: dict[str, Any]


class Ledger:
    """The persistent set of accepted events; safe to call from several threads."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=10.0)
        self._db.execute('PRAGMA journal_mode=WAL')
        # FULL: a committed row survives a power cut too (one fsync per commit).
        self._db.execute('PRAGMA synchronous=FULL')
        self._db.executescript(_SCHEMA)

    def add(self, key: str, origin: str, source: str, record: dict[str, Any],
            now: float) -> bool:
        """Insert a pending row; False (and nothing written) when the key is known."""
        with self._lock:
            cur = self._db.execute(
                'INSERT OR IGNORE INTO events(key, origin, source, state, accepted_at, record)'
                ' VALUES (?, ?, ?, ?, ?, ?)',
                (key, origin, source, PENDING, now, json.dumps(record)))
            return cur.rowcount == 1

    def mark(self, key: str, state: str, now: float) -> None:
        """Set a row's state (published, expired) and the time of that."""
        with self._lock:
            self._db.execute('UPDATE events SET state = ?, published_at = ? WHERE key = ?',
                             (state, now, key))

    def get(self, key: str) -> LedgerRow | None:
        """The row of a key, or None."""
        with self._lock:
            row = self._db.execute(
                'SELECT key, origin, source, state, accepted_at, published_at, record'
                ' FROM events WHERE key = ?', (key,)).fetchone()
        return None if row is None else _row(row)

    def pending(self) -> list[LedgerRow]:
        """Rows not yet published, oldest first."""
        with self._lock:
            rows = self._db.execute(
                'SELECT key, origin, source, state, accepted_at, published_at, record'
                ' FROM events WHERE state = ? ORDER BY seq', (PENDING,)).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of rows per state."""
        with self._lock:
            rows = self._db.execute('SELECT state, COUNT(*) FROM events GROUP BY state')
            return dict(rows.fetchall())

    def prune(self, accepted_before: float) -> int:
        """Forget finished rows accepted before a time; returns how many went."""
        with self._lock:
            cur = self._db.execute('DELETE FROM events WHERE accepted_at < ? AND state != ?',
                                   (accepted_before, PENDING))
            return cur.rowcount

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _row(row) -> LedgerRow:
    key, origin, source, state, accepted_at, published_at, record = row
    return LedgerRow(key, origin, source, state, accepted_at, published_at, json.loads(record))
