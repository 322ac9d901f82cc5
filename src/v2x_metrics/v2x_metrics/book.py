"""The metrics of one host as data: what its nodes publish in, metric families out (no I/O).

The nodes of a station are separate processes; none of them serves metrics. They already
publish what an operator watches: every node's counters and state on /diagnostics, the
gateway's peer table on v2x/peers, speed_policy's decision on v2x/policy_state, the alerts
on v2x/alert_out, v2x/alert_sent and v2x/alert, the commands on cmd_vel. A
:class:`MetricsBook` is fed those (plain values, the receive time given) and yields
:class:`Family` rows in Prometheus' data model; ``exposition`` turns them into the text
format, the console serves them at ``/metrics`` and ``v2x_metrics_exporter`` does on hosts
without the console. Names and labels are documented in docs/metrics.md.

Translation rules:

- Every DiagnosticStatus: ``v2x_node_level{node}`` (0 OK, 1 WARN, 2 ERROR, 3 STALE) and
  ``v2x_node_report_age_seconds{node}``; each numeric value ``KEY`` of a node whose name
  ends in ``COMPONENT`` becomes ``v2x_<component>_<key>``: a counter (``_total``) when the
  key is a running count (:data:`COUNTERS`, or ``dropped_<reason>``, which becomes
  ``v2x_<component>_dropped_total{reason}``), else a gauge.
- Peers: heartbeat age, clock offset, stale, active alerts, authenticated, per peer and path.
- Policy: the action in force, the speed limit, enabled, decisions by action; cmd_vel
  messages as a counter (``rate()`` gives the command rate).
- Alerts: messages per topic, path and authenticated; and the latency of each alert at each
  stage since the frame was captured (the alert's header stamp is the capture time of the
  frame that raised it, or the injection time), with the hop from the stage before when
  both happened on this host (:data:`HOPS`).
"""

from collections import OrderedDict
from dataclasses import dataclass, field
import math
import re
from typing import Iterable, Mapping

#: Node levels (diagnostic_msgs/DiagnosticStatus) as numbers.
LEVELS = {'OK': 0, 'WARN': 1, 'ERROR': 2, 'STALE': 3}

#: Diagnostic keys that are running counts, per component (the rest are gauges; every
#: ``dropped_<reason>`` is a count). A key a node adds later is a gauge until listed here.
COUNTERS = {
    'alert_gateway': frozenset({
        'received', 'reasserted', 'foreign_alerts', 'delivered', 'repeats', 'heartbeats',
        'sent', 'send_errors', 'csv_errors', 'invalid_input', 'internal_errors',
        'kernel_drops', 'peers_refused', 'peers_evicted', 'peers_forgotten', 'id_conflicts',
        'clock_steps'}),
    'speed_policy': frozenset({
        'alerts_received', 'alerts_new', 'alerts_updated', 'alerts_cancelled',
        'alerts_repeated', 'alerts_older', 'alerts_expired', 'alerts_invalid', 'cmd_in',
        'cmd_out', 'cmd_dropped_nonfinite', 'stale_zero_sent', 'fixes', 'fixes_invalid',
        'decisions_changed'}),
    'segment_recorder': frozenset({
        'starts', 'restarts', 'exits', 'stalls', 'deleted_by_age', 'deleted_by_bytes',
        'deleted_for_disk_space', 'pending_footage_lost', 'delete_errors'}),
    'event_clipper': frozenset({
        'published', 'failed', 'no_footage', 'with_gaps', 'rejected', 'duplicates',
        'archive_deleted', 'archive_deleted_evidence', 'archive_delete_errors',
        'save_failed', 'internal_errors'}),
    'hazard_detector': frozenset({
        'frames', 'alerts', 'updates', 'cancels', 'bad_images', 'frame_errors',
        'json_errors', 'dropped_frames', 'source_errors'}),
    'denm_gateway': frozenset({
        'sent_udp', 'sent_gn', 'send_errors', 'delivered', 'repeats', 'unencodable',
        'internal_errors'}),
}

#: The stages of an alert's life, in order, and the topic (or event) that shows each.
STAGES = ('raised', 'sent', 'delivered', 'decided', 'cmd_vel')
#: Hops measured on one host: (hop name, stage before, stage after).
HOPS = (('raise_to_send', 'raised', 'sent'), ('deliver_to_decide', 'delivered', 'decided'),
        ('decide_to_cmd_vel', 'decided', 'cmd_vel'))

#: Histogram buckets (seconds) of the latency families: 1 ms .. 10 s.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

PATH_NAMES = {0: 'local', 1: 'radio', 2: 'broker', 3: 'denm'}
ACTION_NAMES = {0: 'none', 1: 'slow_down', 2: 'stop'}
#: A changed command seen this long before a decision's stamp still belongs to it.
CMD_SLACK_S = 0.1
#: Alerts remembered for the hop measurement (oldest forgotten first).
MAX_TRACKED = 4096

_NAME_BAD = re.compile(r'[^a-zA-Z0-9_]')


def metric_part(text: str) -> str:
    """``text`` as a piece of a Prometheus metric name (``[a-z0-9_]``, lower case)."""
    return _NAME_BAD.sub('_', text.strip().lower()).strip('_') or 'unnamed'


def component_of(node_name: str) -> str:
    """The component of a diagnostics name: ``/rsu/alert_gateway: x`` -> ``alert_gateway``."""
    base = node_name.split(':', 1)[0].strip().rstrip('/')
    return metric_part(base.rsplit('/', 1)[-1])


def number(text) -> float | None:
    """A diagnostic value as a float, or None when it is not a number (text, a path)."""
    if isinstance(text, bool):
        return float(text)
    if isinstance(text, (int, float)):
        return float(text)
    low = str(text).strip().lower()
    if low in ('true', 'false'):
        return 1.0 if low == 'true' else 0.0
    try:
        value = float(low)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Sample:
    """One sample of a family: name suffix, labels, value."""

    suffix: str                       # '' or _total, _bucket, _sum, _count
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass
class Family:
    """One metric family: name, type ('counter' | 'gauge' | 'histogram'), help, samples."""

    name: str
    kind: str
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, labels: Mapping[str, str], value: float, suffix: str = '') -> None:
        self.samples.append(Sample(suffix, tuple(sorted(labels.items())), float(value)))


@dataclass(frozen=True)
class NodeReport:
    """One DiagnosticStatus as plain values."""

    name: str
    level: str          # OK / WARN / ERROR / STALE
    message: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class PeerReport:
    """One PeerStatus as plain values."""

    source_id: str
    role: int
    last_heard: float   # epoch seconds
    stale: bool
    active_alerts: int
    clock_offset_s: float
    path: int
    authenticated: bool


@dataclass(frozen=True)
class AlertSeen:
    """An alert message as the book needs it: identity, stamp (capture time), path."""

    source_id: str
    sequence: int
    stamp: float        # epoch seconds of the header stamp
    path: int
    authenticated: bool
    kind: int
    cancelled: bool = False


class Histogram:
    """Cumulative buckets, sum and count (Prometheus' histogram), plus recent values for
    the console's p50/p99."""

    RECENT = 512

    def __init__(self, buckets=LATENCY_BUCKETS):
        self.bounds = tuple(buckets)
        self.counts = [0] * len(self.bounds)
        self.total = 0
        self.sum = 0.0
        self.recent: list[float] = []

    def observe(self, value: float) -> None:
        value = max(0.0, value)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value
        self.recent.append(value)
        if len(self.recent) > self.RECENT:
            del self.recent[:len(self.recent) - self.RECENT]

    def quantile(self, q: float) -> float:
        """The q-quantile of the recent values (nearest rank), NaN when there are none."""
        if not self.recent:
            return math.nan
        ordered = sorted(self.recent)
        rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return ordered[rank]


class MetricsBook:
    """The state behind one host's /metrics; feed it, then ask for :meth:`families`."""

    def __init__(self, station: str):
        self.station = station
        self._nodes: dict[str, tuple[NodeReport, float]] = {}
        self._peers: dict[tuple[str, int], PeerReport] = {}
        self._peers_at = math.nan
        self._policy: tuple[int, float, bool, float] | None = None
        self._decisions: dict[str, int] = {}
        self._cmd_vel = 0
        self._last_cmd = None
        self._messages: dict[tuple[str, str, str], int] = {}
        # (source_id, sequence) -> {stage: receive time}
        self._alerts: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._hops: dict[tuple[str, str], Histogram] = {}
        self._pending_cmd: list[tuple[tuple[str, int], float]] = []
        # decisions that named an alert before its delivery reached this book (two
        # topics, two publishers: either may arrive first): key -> decision time
        self._early: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._cmd_changed_at = -math.inf
        self._decided_at = -math.inf
        self._raised: OrderedDict[float, float] = OrderedDict()  # stamp -> raise time
        self._broker: dict[str, float] = {}       # $SYS/broker figures (broker_sys)
        self._broker_connected: bool | None = None

    # --- input -------------------------------------------------------------------------
    def on_diagnostics(self, reports: Iterable[NodeReport], now: float) -> None:
        for report in reports:
            self._nodes[report.name] = (report, now)

    def on_peers(self, peers: Iterable[PeerReport], now: float) -> None:
        self._peers = {(p.source_id, p.path): p for p in peers}
        self._peers_at = now

    def on_policy(self, action: int, speed_limit: float, enabled: bool, source_id: str,
                  sequence: int, stamp: float, now: float) -> None:
        """A PolicyState; a change of action counts as a decision and, when it names an
        alert this book saw delivered, closes that alert's 'decided' stage."""
        before = self._policy
        self._policy = (action, speed_limit, enabled, now)
        if before is None or before[0] != action:
            name = ACTION_NAMES.get(action, str(action))
            self._decisions[name] = self._decisions.get(name, 0) + 1
            key = (source_id, sequence)
            at = stamp if stamp > 0 else now
            if source_id and key in self._alerts:
                self._decided(key, at)
            elif source_id and sequence:
                self._early[key] = at
                while len(self._early) > MAX_TRACKED:
                    self._early.popitem(last=False)

    def _decided(self, key, at: float) -> None:
        if 'decided' in self._alerts[key]:
            return
        self._stage(key, 'decided', at)
        # speed_policy publishes the changed command and its state in one step, either
        # first: a change seen since the previous decision, within CMD_SLACK_S before
        # this one's stamp, is this decision's command
        changed = self._cmd_changed_at
        if changed > self._decided_at and changed >= at - CMD_SLACK_S:
            self._stage(key, 'cmd_vel', max(changed, at))
        else:
            self._pending_cmd.append((key, at))
        self._decided_at = max(self._decided_at, at)

    def on_broker_sys(self, name: str, value: float, now: float) -> None:
        """One figure of the broker's $SYS tree (broker_sys.sys_sample)."""
        self._broker[name] = value

    def on_broker_connected(self, connected: bool, now: float) -> None:
        """The $SYS reader's connection to the broker came up or went down."""
        self._broker_connected = connected

    def on_cmd_vel(self, linear_x: float, angular_z: float, now: float) -> None:
        """A command on cmd_vel: counted; the first changed command after a decision closes
        that alert's 'cmd_vel' stage."""
        self._cmd_vel += 1
        command = (linear_x, angular_z)
        changed = self._last_cmd is not None and command != self._last_cmd
        self._last_cmd = command
        if changed:
            self._cmd_changed_at = now
        if changed and self._pending_cmd:
            for key, decided_at in self._pending_cmd:
                if now >= decided_at and key in self._alerts:
                    self._stage(key, 'cmd_vel', now)
            self._pending_cmd = []

    def on_alert(self, topic: str, alert: AlertSeen, now: float) -> None:
        """An alert message on ``topic`` (v2x/alert_out = raised, v2x/alert_sent = sent,
        v2x/alert = delivered)."""
        path = PATH_NAMES.get(alert.path, str(alert.path))
        label = (topic, path, 'true' if alert.authenticated else 'false')
        self._messages[label] = self._messages.get(label, 0) + 1
        stage = {'v2x/alert_out': 'raised', 'v2x/alert_sent': 'sent',
                 'v2x/alert': 'delivered'}.get(topic)
        if stage is None or alert.cancelled or (alert.sequence == 0 and stage != 'raised'):
            return
        if stage == 'raised':
            # alert_out carries no sequence yet (the gateway assigns it, and the station id
            # when empty): keep the raise time by the alert's stamp until alert_sent names it.
            self._raised[alert.stamp] = now
            while len(self._raised) > MAX_TRACKED:
                self._raised.popitem(last=False)
            return
        key = (alert.source_id, alert.sequence)
        record = self._alerts.get(key)
        if record is None:
            record = self._alerts.setdefault(key, {'stamp': alert.stamp, 'path': path})
            while len(self._alerts) > MAX_TRACKED:
                self._alerts.popitem(last=False)
        elif stage in record:
            return   # a repeat or an update: the first one counts
        if stage == 'sent' and alert.stamp in self._raised:
            self._stage(key, 'raised', self._raised.pop(alert.stamp))
        if stage == 'delivered':
            record['path'] = path   # the later stages are labelled by the delivery path
        self._stage(key, stage, now)
        if stage == 'delivered' and key in self._early:
            self._decided(key, self._early.pop(key))

    def _stage(self, key, stage: str, at: float) -> None:
        record = self._alerts[key]
        if stage in record:
            return
        record[stage] = at
        path = record['path'] if stage in ('delivered', 'decided', 'cmd_vel') else 'local'
        self._latency.setdefault((stage, path), Histogram()).observe(at - record['stamp'])
        for hop, first, second in HOPS:
            if second == stage and first in record:
                self._hops.setdefault((hop, path), Histogram()).observe(at - record[first])

    # --- output ------------------------------------------------------------------------
    def stages(self, source_id: str, sequence: int) -> dict[str, float]:
        """When this book saw each stage of one alert (receive times, epoch seconds)."""
        record = self._alerts.get((source_id, sequence), {})
        return {k: v for k, v in record.items() if k in STAGES}

    def latency_table(self) -> list[dict]:
        """p50/p99 per stage (since capture) and per hop, for the console."""
        rows = []
        for (stage, path), h in sorted(self._latency.items()):
            rows.append({'what': f'capture->{stage}', 'path': path, 'count': h.total,
                         'p50_ms': h.quantile(0.5) * 1e3, 'p99_ms': h.quantile(0.99) * 1e3})
        for (hop, path), h in sorted(self._hops.items()):
            rows.append({'what': hop, 'path': path, 'count': h.total,
                         'p50_ms': h.quantile(0.5) * 1e3, 'p99_ms': h.quantile(0.99) * 1e3})
        return rows

    def families(self, now: float) -> list[Family]:
        st = {'station': self.station}
        out: dict[str, Family] = {}

        def fam(name, kind, text) -> Family:
            return out.setdefault(name, Family(name, kind, text))

        level = fam('v2x_node_level', 'gauge', 'node state: 0 OK, 1 WARN, 2 ERROR, 3 STALE')
        age = fam('v2x_node_report_age_seconds', 'gauge', 'seconds since the node last '
                  'reported on /diagnostics')
        for name, (report, at) in sorted(self._nodes.items()):
            labels = dict(st, node=name.split(':', 1)[0].strip())
            level.add(labels, LEVELS.get(report.level.upper(), 3))
            age.add(labels, max(0.0, now - at))
            comp = component_of(name)
            for key, text in sorted(report.values.items()):
                value = number(text)
                if value is None:
                    continue
                mkey = metric_part(key)
                if mkey.startswith('dropped_'):
                    f = fam(f'v2x_{comp}_dropped', 'counter',
                            f'{comp}: inputs dropped, by reason')
                    f.add(dict(labels, reason=mkey[len('dropped_'):]), value, '_total')
                elif mkey in COUNTERS.get(comp, ()):
                    fam(f'v2x_{comp}_{mkey}', 'counter',
                        f'{comp}: {key} (running count)').add(labels, value, '_total')
                else:
                    fam(f'v2x_{comp}_{mkey}', 'gauge', f'{comp}: {key}').add(labels, value)

        if self._peers:
            fams = (
                ('v2x_peer_heartbeat_age_seconds', 'seconds since the last heartbeat',
                 lambda p: max(0.0, now - p.last_heard)),
                ('v2x_peer_clock_offset_seconds', "peer's send stamp minus our receive time",
                 lambda p: p.clock_offset_s),
                ('v2x_peer_stale', '1 when heartbeats are missed', lambda p: p.stale),
                ('v2x_peer_active_alerts', 'live alerts the peer reports',
                 lambda p: p.active_alerts),
                ('v2x_peer_authenticated', '1 when the last heartbeat was verified',
                 lambda p: p.authenticated),
                ('v2x_peer_role', 'Heartbeat.ROLE_* of the peer', lambda p: p.role))
            for name, text, get in fams:
                f = fam(name, 'gauge', text)
                for (peer, path), p in sorted(self._peers.items()):
                    f.add(dict(st, peer=peer, path=PATH_NAMES.get(path, str(path))),
                          float(get(p)))
        if self._policy is not None:
            action, limit, enabled, _ = self._policy
            fam('v2x_policy_action', 'gauge', 'action in force: 0 none, 1 slow_down, '
                '2 stop').add(st, action)
            fam('v2x_policy_speed_limit_mps', 'gauge', 'speed limit in force (NaN: none)'
                ).add(st, limit)
            fam('v2x_policy_enabled', 'gauge', '0 when the filter passes commands through'
                ).add(st, enabled)
        f = fam('v2x_policy_decisions', 'counter', 'changes of the policy action, by action')
        for action, count in sorted(self._decisions.items()):
            f.add(dict(st, action=action), count, '_total')
        fam('v2x_cmd_vel_messages', 'counter', 'commands seen on cmd_vel').add(
            st, self._cmd_vel, '_total')
        f = fam('v2x_alert_messages', 'counter', 'alert messages seen, by topic, path and '
                'authenticated')
        for (topic, path, auth), count in sorted(self._messages.items()):
            f.add(dict(st, topic=topic, path=path, authenticated=auth), count, '_total')
        self._histograms(fam('v2x_alert_latency_seconds', 'histogram', 'time from the '
                             "frame's capture (the alert's stamp) to each stage"),
                         self._latency, 'stage', st)
        self._histograms(fam('v2x_alert_hop_seconds', 'histogram', 'time between two '
                             'stages of one alert seen on this host'), self._hops, 'hop', st)
        if self._broker_connected is not None:
            fam('v2x_broker_up', 'gauge', "1 while the exporter reads the broker's $SYS tree"
                ).add(st, self._broker_connected)
        for name, value in sorted(self._broker.items()):
            fam(name, 'gauge', "the broker's own figure ($SYS/broker/...)").add(st, value)
        return [f for f in out.values() if f.samples or f.kind == 'histogram']

    @staticmethod
    def _histograms(f: Family, table, what: str, st) -> None:
        for (name, path), h in sorted(table.items()):
            labels = dict(st, path=path, **{what: name})
            for bound, count in zip(h.bounds, h.counts, strict=True):
                f.add(dict(labels, le=f'{bound:g}'), count, '_bucket')
            f.add(dict(labels, le='+Inf'), h.total, '_bucket')
            f.add(labels, h.sum, '_sum')
            f.add(labels, h.total, '_count')
