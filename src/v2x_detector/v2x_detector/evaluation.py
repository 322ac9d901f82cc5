"""Scoring the detector against labelled clips (pure: no rclpy, no model, no video).

hazard_detector_eval runs the node's pipeline over clips; this module reads the labels,
matches the events it gave to them and sums up per kind.

Labels file (TSV, a header row, one row per clip and labelled hazard; the columns of
../shared/eval/dev/MANIFEST.tsv, extra columns ignored):

    file       the clip's file name, relative to the clips directory
    kind       collision | fire | blockage | none (a clip without hazards)
    t_start_s  the impact or onset, seconds of the clip's own timeline (empty for none)
    duration_s optional: the clip's length (the decoder's figure is used when it ran)

A clip with two hazards has two rows. Per clip, and only these, site settings may be
given as optional columns (in the labels file or in a side file of ``file`` + these
columns): ``lane_polygon`` (x1,y1,x2,y2,... in 0..1 of the frame) and any rule parameter
named ``ground_*`` (a ground calibration, pixels to metres). An empty cell leaves the
launch value.

Matching (issue 23): an event's time is the stamp of its first (new) alert. It matches a
label of its kind whose window holds that time:

    collision  [t - 1, t + 10] s
    fire       [t - 1, end of clip]
    blockage   [t + blockage_time_s - 2, end of clip]

A false alarm is a new event that matches no label, or one matched to a label that an
earlier event already matched. Delay: event time - t (a blockage: - blockage_time_s more,
i.e. from when it became due).
"""

import csv
from dataclasses import dataclass, field
import math
import statistics

KINDS = ('collision', 'fire', 'blockage')
NONE = 'none'
#: site settings a labels row may carry (plus any rule parameter starting with ground_)
SITE_COLUMNS = ('lane_polygon',)
SITE_PREFIX = 'ground_'
#: (before t, after t) of each kind's window; None after: until the end of the clip
COLLISION_WINDOW = (1.0, 10.0)
FIRE_BEFORE_S = 1.0
BLOCKAGE_EARLY_S = 2.0


class LabelsError(ValueError):
    """A labels file that cannot be read as documented (the message names file and row)."""


@dataclass(frozen=True)
class Label:
    """One labelled hazard of a clip."""

    kind: str
    t: float


@dataclass(frozen=True)
class ClipSpec:
    """A clip to run: its file, its labels (none: hazard-free) and its site settings."""

    file: str
    labels: tuple[Label, ...] = ()
    site: tuple[tuple[str, object], ...] = ()  # (parameter, value), from the site columns
    duration_s: float | None = None


@dataclass(frozen=True)
class Detected:
    """A new event the pipeline gave: its kind and time (stamp of the new alert, s of the
    clip) and incident number."""

    kind: str
    t: float
    incident: int = 0
    confidence: float = 0.0
    #: where it stands: the foot point (bottom centre of its box) in 0..1 of the frame
    position: tuple[float, float] | None = None
    #: the same in metres on the road, where the site gives a ground calibration
    ground: tuple[float, float] | None = None


@dataclass(frozen=True)
class EventVerdict:
    """One new event judged: 'hit' (label index), 'false' (no label) or 'duplicate'."""

    event: Detected
    outcome: str
    label: int | None = None


@dataclass(frozen=True)
class ClipVerdict:
    """A clip's labels and events judged."""

    file: str
    duration_s: float
    labels: tuple[Label, ...]
    events: tuple[EventVerdict, ...]
    delays: tuple[float | None, ...]  # per label: the delay of its first match, None: missed

    @property
    def false_alarms(self) -> tuple[EventVerdict, ...]:
        """The events that are false alarms (no label, or a label already matched)."""
        return tuple(v for v in self.events if v.outcome != 'hit')


def window(label: Label, duration_s: float, blockage_time_s: float) -> tuple[float, float]:
    """[lo, hi] of event times that match the label."""
    if label.kind == 'collision':
        return label.t - COLLISION_WINDOW[0], label.t + COLLISION_WINDOW[1]
    if label.kind == 'fire':
        return label.t - FIRE_BEFORE_S, max(duration_s, label.t)
    if label.kind == 'blockage':
        lo = label.t + blockage_time_s - BLOCKAGE_EARLY_S
        return lo, max(duration_s, lo)
    raise ValueError(f'unknown label kind {label.kind!r}')


def delay(label: Label, t: float, blockage_time_s: float) -> float:
    """Seconds from the label (a blockage: from when it became due) to the event."""
    return t - label.t - (blockage_time_s if label.kind == 'blockage' else 0.0)


def match_clip(file: str, labels, events, duration_s: float,
               blockage_time_s: float) -> ClipVerdict:
    """Judge a clip's new events (any order) against its labels (issue 23's rules)."""
    labels = tuple(labels)
    matched: list[float | None] = [None] * len(labels)
    verdicts = []
    for ev in sorted(events, key=lambda e: (e.t, e.incident)):
        fits = [i for i, lab in enumerate(labels) if lab.kind == ev.kind
                and window(lab, duration_s, blockage_time_s)[0] <= ev.t
                <= window(lab, duration_s, blockage_time_s)[1]]
        free = [i for i in fits if matched[i] is None]
        if free:
            i = min(free, key=lambda j: (labels[j].t, j))
            matched[i] = delay(labels[i], ev.t, blockage_time_s)
            verdicts.append(EventVerdict(ev, 'hit', i))
        elif fits:
            verdicts.append(EventVerdict(ev, 'duplicate', fits[0]))
        else:
            verdicts.append(EventVerdict(ev, 'false'))
    return ClipVerdict(file, duration_s, labels, tuple(verdicts), tuple(matched))


@dataclass
class KindScore:
    """Per kind over a run: labels, detected, recall, precision, delays, false alarms."""

    kind: str
    labels: int = 0
    detected: int = 0
    false_alarms: int = 0
    delays: list = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        """detected / labels (None without labels)."""
        return self.detected / self.labels if self.labels else None

    @property
    def precision(self) -> float | None:
        """hits / new events of this kind (None without events)."""
        events = self.detected + self.false_alarms
        return self.detected / events if events else None

    @property
    def median_delay_s(self) -> float | None:
        """Median delay of the detected labels (None when none was)."""
        return statistics.median(self.delays) if self.delays else None

    def per_hour(self, footage_s: float) -> float | None:
        """False alarms per hour of all footage run."""
        return self.false_alarms * 3600.0 / footage_s if footage_s > 0 else None

    def as_dict(self, footage_s: float) -> dict:
        """For --json."""
        return {'labels': self.labels, 'detected': self.detected, 'recall': self.recall,
                'precision': self.precision, 'median_delay_s': self.median_delay_s,
                'false_alarms': self.false_alarms,
                'false_alarms_per_hour': self.per_hour(footage_s)}


def score(verdicts) -> dict[str, KindScore]:
    """Per kind (and 'all') over the clips' verdicts."""
    out = {k: KindScore(k) for k in KINDS + ('all',)}
    for clip in verdicts:
        for lab, d in zip(clip.labels, clip.delays, strict=True):
            for key in (lab.kind, 'all'):
                out[key].labels += 1
                if d is not None:
                    out[key].detected += 1
                    out[key].delays.append(d)
        for v in clip.false_alarms:
            for key in (v.event.kind, 'all'):
                out.setdefault(key, KindScore(key)).false_alarms += 1
    return out


# ------------------------------------------------------------------ the labels file
def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelsError(f'{what}: {text!r} is not a number') from None
    if not math.isfinite(value):
        raise LabelsError(f'{what}: {text!r} is not a finite number')
    return value


def _site_value(column: str, text: str, where: str):
    if column == 'lane_polygon' or ',' in text or ' ' in text.strip():
        parts = [p for p in text.replace(',', ' ').split() if p]
        return [_number(p, f'{where}: {column}') for p in parts]
    return _number(text, f'{where}: {column}')


def site_columns(header) -> list[str]:
    """The header's columns that are site settings."""
    return [c for c in header if c in SITE_COLUMNS or c.startswith(SITE_PREFIX)]


def read_sites(path: str) -> dict[str, dict]:
    """A side file (TSV: file + site columns) -> file -> {parameter: value}."""
    with open(path, encoding='utf-8', newline='') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
        header = rows[0].keys() if rows else []
    if rows and 'file' not in header:
        raise LabelsError(f'{path}: no column "file"')
    out: dict[str, dict] = {}
    for n, row in enumerate(rows, start=2):
        where = f'{path} row {n}'
        for column in site_columns(header):
            text = (row.get(column) or '').strip()
            if text:
                out.setdefault(row['file'], {})[column] = _site_value(column, text, where)
    return out


def read_labels(path: str, sites: dict[str, dict] | None = None) -> list[ClipSpec]:
    """The labels file -> one ClipSpec per clip, in the file's order (see the module doc).

    sites: file -> {parameter: value} from a side file, over the file's own columns."""
    try:
        with open(path, encoding='utf-8', newline='') as f:
            reader = csv.DictReader(f, delimiter='\t')
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except OSError as exc:
        raise LabelsError(f'{path}: {exc.strerror or exc}') from None
    missing = [c for c in ('file', 'kind', 't_start_s') if c not in header]
    if missing:
        raise LabelsError(f'{path}: missing column(s) {", ".join(missing)} '
                          '(need file, kind, t_start_s; tab-separated, header first)')
    order: list[str] = []
    labels: dict[str, list[Label]] = {}
    site: dict[str, dict] = {}
    durations: dict[str, float] = {}
    for n, row in enumerate(rows, start=2):
        where = f'{path} row {n}'
        file = (row['file'] or '').strip()
        kind = (row['kind'] or '').strip()
        if not file:
            raise LabelsError(f'{where}: empty file')
        if file not in labels:
            order.append(file)
            labels[file] = []
        if kind not in KINDS + (NONE,):
            raise LabelsError(f'{where}: kind {kind!r} is not one of '
                              f'{", ".join(KINDS + (NONE,))}')
        if kind != NONE:
            labels[file].append(Label(kind, _number((row['t_start_s'] or '').strip(),
                                                    f'{where}: t_start_s')))
        if (row.get('duration_s') or '').strip():
            durations[file] = _number(row['duration_s'].strip(), f'{where}: duration_s')
        for column in site_columns(header):
            text = (row.get(column) or '').strip()
            if text:
                site.setdefault(file, {})[column] = _site_value(column, text, where)
    for file, values in (sites or {}).items():
        if file in labels:
            site.setdefault(file, {}).update(values)
    return [ClipSpec(f, tuple(sorted(labels[f], key=lambda lab: lab.t)),
                     tuple(sorted(site.get(f, {}).items())), durations.get(f))
            for f in order]


# ------------------------------------------------------------------ reports
def _fmt(value, spec: str, none: str = '-') -> str:
    return none if value is None else format(value, spec)


def clip_lines(clip: ClipVerdict) -> list[str]:
    """The per-clip table's rows for one clip: labels with their verdict, then events."""
    labels = []
    for lab, d in zip(clip.labels, clip.delays, strict=True):
        verdict = 'MISSED' if d is None else f'found +{d:.1f}s' if d >= 0 else f'found {d:.1f}s'
        labels.append(f'{lab.kind}@{lab.t:g}s {verdict}')
    events = []
    for v in clip.events:
        mark = {'hit': 'ok', 'false': 'FALSE ALARM', 'duplicate': 'FALSE ALARM (again)'}[
            v.outcome]
        at = (f' at {v.event.position[0]:.2f},{v.event.position[1]:.2f}'
              if v.event.kind == 'blockage' and v.event.position else '')
        events.append(f'{v.event.kind}@{v.event.t:.1f}s{at} {mark}')
    return [f'{clip.file:<44} {clip.duration_s:>6.1f}  '
            f'{"; ".join(labels) or "no hazard":<40} {"; ".join(events) or "no events"}']


def kind_table(scores: dict[str, KindScore], footage_s: float) -> list[str]:
    """The per-kind table."""
    lines = [f'{"kind":<10} {"labels":>6} {"detected":>8} {"recall":>6} {"precision":>9} '
             f'{"median delay":>12} {"false alarms":>12} {"per hour":>8}']
    for key in KINDS + ('all',):
        s = scores[key]
        lines.append(f'{key:<10} {s.labels:>6} {s.detected:>8} {_fmt(s.recall, ".2f"):>6} '
                     f'{_fmt(s.precision, ".2f"):>9} '
                     f'{_fmt(s.median_delay_s, ".1f") + (" s" if s.delays else ""):>12} '
                     f'{s.false_alarms:>12} {_fmt(s.per_hour(footage_s), ".1f"):>8}')
    return lines
