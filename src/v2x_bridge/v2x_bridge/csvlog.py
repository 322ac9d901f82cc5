"""The vehicle's CSV log of delivered alerts, rotated by size keeping N old files.

Columns (ARCHITECTURE.md): received_at, source_id, sequence, event, kind, severity,
suggest, distance_m, road, latitude, longitude, detection_time, validity_s; kind,
severity and suggest as the seed's strings. Each file starts with the header row. Text
cells are written so that no spreadsheet evaluates them (cell()).
"""

import csv
import io
import math
import os
from pathlib import Path

from v2x_common.mappings import kind_to_str, severity_to_str, suggest_to_str
from v2x_common.timeutil import iso
from v2x_protocol import ranges
from v2x_protocol.wire import AlertData

COLUMNS = ('received_at', 'source_id', 'sequence', 'event', 'kind', 'severity', 'suggest',
           'distance_m', 'road', 'latitude', 'longitude', 'detection_time', 'validity_s')


_FORMULA_START = ('=', '+', '-', '@', '\t', '\r')


def cell(text: str) -> str:
    """A text cell no spreadsheet evaluates: control characters shown as \\xNN, and a
    leading = + - @ TAB or CR neutralised with a leading apostrophe (OWASP's advice)."""
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return ranges.printable(text)


def _num(value: float, fmt: str) -> str:
    return '' if not math.isfinite(value) else format(value, fmt)


def row(alert: AlertData, change: str, received_s: float) -> list[str]:
    """One CSV row for a delivered alert."""
    return [iso(received_s), cell(alert.source_id), str(alert.sequence), change,
            kind_to_str(alert.kind), severity_to_str(alert.severity),
            suggest_to_str(alert.suggest), _num(alert.distance_m, '.1f'), cell(alert.road),
            _num(alert.latitude, '.7f'), _num(alert.longitude, '.7f'),
            iso(alert.detection_time_ns / 1e9), _num(alert.validity_s, '.1f')]


class RotatingCsv:
    """Append rows to path; when it would exceed max_bytes, shift path -> path.1 ... .keep."""

    def __init__(self, path: str | Path, max_bytes: int = 10_000_000, keep: int = 5):
        if max_bytes <= 0 or keep < 0:
            raise ValueError('max_bytes must be > 0 and keep >= 0')
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _header(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator='\n').writerow(COLUMNS)
        return buf.getvalue()

    def rotate(self) -> None:
        """Shift the files by one; the oldest beyond keep is removed."""
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f'{self.path.name}.{self.keep}')
        oldest.unlink(missing_ok=True)
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f'{self.path.name}.{i}')
            if src.exists():
                os.replace(src, self.path.with_name(f'{self.path.name}.{i + 1}'))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f'{self.path.name}.1'))

    def append(self, values: list[str]) -> None:
        """Write one row (raises OSError on a full disk etc.; the caller counts it)."""
        buf = io.StringIO()
        csv.writer(buf, lineterminator='\n').writerow(values)
        line = buf.getvalue()
        size = self.path.stat().st_size if self.path.exists() else 0
        if size and size + len(line.encode()) > self.max_bytes:
            self.rotate()
            size = 0
        with self.path.open('a', encoding='utf-8', newline='') as f:
            if size == 0:
                f.write(self._header())
            f.write(line)
