"""hazard_detector's operator confirmation: the ConfirmationGate behind a service.

The node hands every event to ``OperatorHold.offer`` instead of publishing it; the gate
(confirmation.py) says what to do. Held events are announced on v2x/held_events
(HeldEvent: the alert it would send, the incident's box and a JPEG of the frame with the
boxes drawn); the service v2x/resolve_held (ResolveHeld) confirms or dismisses one; a 1 s
timer applies the timeout. A dismissed event's frame (without drawings) is kept in
negatives_dir as a labelled negative: ``<name>.jpg`` plus a row in ``labels.tsv`` with
the columns of ../shared/eval/dev/MANIFEST.tsv (kind ``none``), the oldest removed beyond
negatives_max_count files or negatives_max_mb. Publishing, the service and the timer run
under one lock: the detector's worker thread and the executor never publish at once.
"""

import csv
import io
import os
import threading
import time
from typing import Callable

import cv2
import numpy as np

from v2x_common import qos
from v2x_common.files import write_atomic
from v2x_common.mappings import KIND_BLOCKAGE, KIND_COLLISION, KIND_FIRE, kind_to_str
from v2x_common.params import Param, ParameterError, ge, in_range, one_of
from v2x_common.timeutil import fill_stamp
from v2x_detector.confirmation import (
    BROADCAST,
    CONFIDENT,
    CONFIRMED,
    DISMISSED,
    DROPPED_AT_TIMEOUT,
    SENT_AT_TIMEOUT,
    TIMEOUT_ACTIONS,
    WITHDRAWN,
    ConfirmationGate,
    ConfirmSettings,
    Held,
    Hold,
    Publish,
    Resolved,
    UnknownHold,
    to_prune,
)
from v2x_detector.conversions import Site, event_to_alert
from v2x_msgs.msg import HeldEvent
from v2x_msgs.srv import ResolveHeld

LABEL_COLUMNS = ('file', 'kind', 't_start_s', 'camera', 'duration_s', 'width', 'height',
                 'fps', 'repo', 'path_in_repo', 'licence', 'notes')
LABELS_FILE = 'labels.tsv'
SNAPSHOT_WIDTH = 960     # snapshots wider than this are scaled down (message size)
_STATES = {CONFIRMED: HeldEvent.STATE_CONFIRMED, DISMISSED: HeldEvent.STATE_DISMISSED,
           SENT_AT_TIMEOUT: HeldEvent.STATE_SENT_AT_TIMEOUT,
           DROPPED_AT_TIMEOUT: HeldEvent.STATE_DROPPED_AT_TIMEOUT,
           CONFIDENT: HeldEvent.STATE_CONFIDENT, WITHDRAWN: HeldEvent.STATE_WITHDRAWN}

_UNIT = in_range(0.0, 1.0)
#: hazard_detector's confirmation parameters (docs/detector.md, "Operator confirmation")
CONFIRM_PARAMETERS = (
    Param('confirm_collision', 0.0, 'hold collision events below this confidence for an '
          'operator; 0: never', _UNIT),
    Param('confirm_fire', 0.0, 'hold fire events below this confidence; 0: never', _UNIT),
    Param('confirm_blockage', 0.0, 'hold blockage events below this confidence; 0: never',
          _UNIT),
    Param('confirm_timeout_s', 120.0, 'an undecided held event is decided by '
          'confirm_timeout_action after this long (s)', in_range(1.0, 86400.0)),
    Param('confirm_timeout_action', BROADCAST, 'broadcast (default: no hazard waits on an '
          'absent operator) or drop', one_of(*TIMEOUT_ACTIONS)),
    Param('negatives_dir', '', "dismissed events' frames and labels.tsv; empty: "
          '<state_dir>/negatives'),
    Param('negatives_max_count', 500, 'keep at most this many negatives; 0: no limit',
          ge(0)),
    Param('negatives_max_mb', 200.0, 'keep at most this many MB of negatives; 0: no limit',
          ge(0.0)),
)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError('JPEG encoding failed')
    return buf.tobytes()


class NegativeStore:
    """Dismissed frames with a labels TSV in one folder, under a retention limit."""

    def __init__(self, directory: str, max_count: int, max_bytes: int, camera: str):
        self.directory, self.max_count, self.max_bytes = directory, max_count, max_bytes
        self.camera = camera

    def add(self, name: str, jpeg: bytes, width: int, height: int, notes: str) -> list[str]:
        """Write name.jpg and its row, then apply the retention; returns the names pruned."""
        os.makedirs(self.directory, exist_ok=True)
        write_atomic(os.path.join(self.directory, name), jpeg)
        rows = [r for r in self._rows() if r.get('file') != name]
        rows.append({'file': name, 'kind': 'none', 't_start_s': '', 'camera': self.camera,
                     'duration_s': '0', 'width': str(width), 'height': str(height),
                     'fps': '', 'repo': '', 'path_in_repo': '',
                     'licence': "this RSU's own footage", 'notes': notes})
        files = []
        for r in rows:
            try:
                files.append((r['file'], os.path.getsize(os.path.join(self.directory,
                                                                      r['file']))))
            except OSError:
                continue  # a row whose frame is gone: dropped from the labels
        pruned = to_prune(files, self.max_count, self.max_bytes)
        for old in pruned:
            try:
                os.unlink(os.path.join(self.directory, old))
            except FileNotFoundError:
                pass
        kept = {f for f, _ in files} - set(pruned)
        self._write([r for r in rows if r['file'] in kept])
        return pruned

    def _rows(self) -> list[dict]:
        try:
            with open(os.path.join(self.directory, LABELS_FILE), encoding='utf-8',
                      newline='') as f:
                return list(csv.DictReader(f, delimiter='\t'))
        except FileNotFoundError:
            return []

    def _write(self, rows: list[dict]) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, LABEL_COLUMNS, delimiter='\t', lineterminator='\n',
                                extrasaction='ignore')
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ' '.join(str(r.get(k) or '').split()) for k in LABEL_COLUMNS})
        write_atomic(os.path.join(self.directory, LABELS_FILE), out.getvalue())


class OperatorHold:
    """The gate, its topic, service, timer and negatives, inside the detector node."""

    def __init__(self, node, publish_event: Callable, site: Site, state_dir: str):
        value = lambda name: node.get_parameter(name).value  # noqa: E731
        settings = ConfirmSettings(
            {KIND_COLLISION: value('confirm_collision'), KIND_FIRE: value('confirm_fire'),
             KIND_BLOCKAGE: value('confirm_blockage')},
            value('confirm_timeout_s'), value('confirm_timeout_action'))
        for name, reason in settings.problems():
            raise ParameterError(f'confirm_{name}', reason)
        self.node, self.site = node, site
        self._publish_event = publish_event
        # Ids name this run: a console holding an id of an earlier run gets 'no such'.
        self.gate = ConfirmationGate(settings, id_prefix=f'{int(time.time()):x}-')
        self.negatives = NegativeStore(
            value('negatives_dir') or os.path.join(state_dir, 'negatives'),
            value('negatives_max_count'), int(value('negatives_max_mb') * 1e6), site.source_id)
        self._frames: dict[str, tuple[bytes, bytes, int, int]] = {}  # id -> jpegs, size
        self._lock = threading.Lock()
        self.counts = {'held': 0, 'confirmed': 0, 'dismissed': 0, 'sent_at_timeout': 0,
                       'dropped_at_timeout': 0, 'confident': 0, 'withdrawn': 0,
                       'negative_errors': 0}
        self.pub = node.create_publisher(HeldEvent, 'v2x/held_events', qos.HELD_EVENTS)
        node.create_service(ResolveHeld, 'v2x/resolve_held', self._on_resolve)
        if settings.enabled:
            node.create_timer(1.0, self._tick)
            node.get_logger().info(
                'operator confirmation on: thresholds ' + ', '.join(
                    f'{kind_to_str(k)} {v:g}' for k, v in settings.thresholds.items())
                + f'; after {settings.timeout_s:g} s: {settings.timeout_action}')

    @property
    def waiting(self) -> int:
        """Events held now (for the diagnostics, from the executor's thread)."""
        with self._lock:
            return len(self.gate.held)

    def offer(self, event, image: np.ndarray, draw: Callable[[], np.ndarray]) -> None:
        """One event of the rules (worker thread): published, or held with its frame."""
        with self._lock:
            actions = self.gate.offer(event, time.time())
            for action in actions:
                if isinstance(action, Held):
                    self._frames[action.hold.hold_id] = self._snapshots(image, draw())
            self._apply(actions)

    def _snapshots(self, image, drawn) -> tuple[bytes, bytes, int, int]:
        h, w = drawn.shape[:2]
        if w > SNAPSHOT_WIDTH:
            drawn = cv2.resize(drawn, (SNAPSHOT_WIDTH, round(h * SNAPSHOT_WIDTH / w)),
                               interpolation=cv2.INTER_AREA)
        return _jpeg(drawn, 80), _jpeg(image, 92), w, h

    def _tick(self) -> None:
        with self._lock:
            self._apply(self.gate.tick(time.time()))

    def _on_resolve(self, request, response):
        decision = {ResolveHeld.Request.CONFIRM: self.gate.confirm,
                    ResolveHeld.Request.DISMISS: self.gate.dismiss}.get(request.decision)
        if decision is None:
            response.accepted, response.message = False, f'decision {request.decision}: ' \
                'expected CONFIRM (1) or DISMISS (2)'
            return response
        by = request.decided_by[:64] or 'operator'
        with self._lock:
            try:
                actions = decision(request.hold_id, time.time(), by)
            except UnknownHold as exc:
                response.accepted, response.message = False, str(exc)
                return response
            self._apply(actions)
        outcome = next(a.outcome for a in actions if isinstance(a, Resolved))
        response.accepted, response.message = True, outcome
        return response

    def _apply(self, actions) -> None:
        for action in actions:
            if isinstance(action, Publish):
                self._publish_event(action.event)
            elif isinstance(action, Held):
                self.counts['held'] += 1
                self.node.get_logger().info(
                    f'{kind_to_str(action.hold.first.kind)} event held for an operator '
                    f'({action.hold.hold_id}, confidence '
                    f'{action.hold.first.confidence:.2f} < {action.hold.threshold:g})')
                self.pub.publish(self._message(action.hold, HeldEvent.STATE_HELD, ''))
            elif isinstance(action, Resolved):
                self._resolved(action)

    def _resolved(self, action: Resolved) -> None:
        hold, outcome = action.hold, action.outcome
        self.counts[outcome] += 1
        frames = self._frames.get(hold.hold_id)
        note = action.by
        if outcome == DISMISSED and frames is not None:
            stamp = time.strftime('%Y%m%dT%H%M%S', time.gmtime(hold.first.stamp))
            name = f'neg_{stamp}_{hold.hold_id}.jpg'
            try:
                self.negatives.add(name, frames[1], frames[2], frames[3], (
                    f'dismissed {kind_to_str(hold.first.kind)}, confidence '
                    f'{hold.first.confidence:.2f}, by {action.by}'))
                note = f'{action.by}; kept as {name}'
            except OSError as exc:
                self.counts['negative_errors'] += 1
                self.node.get_logger().error(f'negative {name} not kept: {exc}')
        self.node.get_logger().info(f'held event {hold.hold_id}: {outcome} ({action.by!r})')
        self.pub.publish(self._message(hold, _STATES[outcome], note))
        self._frames.pop(hold.hold_id, None)

    def _message(self, hold: Hold, state: int, note: str) -> HeldEvent:
        msg = HeldEvent()
        msg.hold_id, msg.state, msg.note = hold.hold_id, state, note
        msg.alert = event_to_alert(hold.latest, 0, self.site)
        msg.threshold = float(hold.threshold)
        fill_stamp(msg.deadline, hold.deadline)
        frames = self._frames.get(hold.hold_id)
        if frames is not None:
            drawn, _, w, h = frames
            msg.width, msg.height = w, h
            msg.boxes = [float(v) for v in hold.first.box]
            if state == HeldEvent.STATE_HELD:
                msg.jpeg = drawn
        return msg
