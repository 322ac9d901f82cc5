"""What event_intake does with an event, whichever way it came (pure Python, no rclpy).

``Intake.handle(data, origin, source, fallback_key)`` takes the bytes of one event
(a dropped file or an HTTP body), looks its key up in the ledger, validates it, records
it, and publishes it through the injected ``publish`` callable. ``Intake.process_file``
adds the directory part: processed/ and failed/ (beside events_dir, as ARCHITECTURE.md
says: /opt/v2x/processed, /opt/v2x/failed) with a sibling .error.txt. The clock,
the publisher and the ledger come in as arguments.
"""

import base64
from collections import Counter
from dataclasses import dataclass
import errno
import hashlib
import itertools
import json
import os
import secrets
import shutil
import threading
import time
from typing import Any, Callable, Mapping
import uuid

from v2x_common.params import (
    Param,
    ParameterError,
    check_value,
    defaults,
    ge,
    gt,
    in_range,
)
from v2x_common.timeutil import iso
from v2x_intake.ledger import EXPIRED, PENDING, PUBLISHED, Ledger
from v2x_intake.schema import (
    BadJson,
    IntakeError,
    IntakeEvent,
    InvalidField,
    check_depth,
    load_json,
    parse_event,
)
from v2x_protocol.io import keys

#: Largest event accepted (file or HTTP body); the seed's events are ~150 bytes.
MAX_EVENT_BYTES = 64 * 1024
PROCESSED = 'processed'
FAILED = 'failed'
LEDGER_NAME = 'event_intake.sqlite3'
#: The counters of Intake.stats (diagnostics and /healthz).
STAT_KEYS = ('accepted_file', 'accepted_http', 'published', 'duplicate', 'failed_file',
             'expired_unsent', 'file_errors', 'ack_timeouts')


#: event_intake's parameters (one table: the node declares it, IntakeSettings' defaults
#: and validate() come from it).
PARAMETERS = (
    Param('events_dir', '/opt/v2x/events', 'directory watched for dropped *.json events '
          '("" = no directory intake); processed/ and failed/ are made beside it'),
    Param('http_enabled', True, 'serve POST /events, GET /healthz and /openapi.json'),
    Param('http_host', '127.0.0.1', 'address the HTTP intake listens on'),
    Param('http_port', 8088, 'TCP port of the HTTP intake (0 = any free port)',
          in_range(0, 65535)),
    Param('token_file', '', 'file holding the HTTP bearer token (preferred over token_env)'),
    Param('token_file_create', False, 'make token_file with a random token (mode 0600) '
          "when it does not exist (the launch files' lab mode)"),
    Param('token_env', 'V2X_INTAKE_TOKEN', 'environment variable holding the HTTP bearer '
          'token'),
    Param('http_insecure', False, 'accept HTTP posts without a token when none is '
          'configured'),
    Param('state_dir', '', 'directory of the exactly-once ledger ("" = intake_state/ beside '
          'events_dir)'),
    Param('default_validity_s', 600.0, 'validity_s of events without ttl_s', gt(0.0)),
    Param('max_clock_skew_s', 300.0, 'reject events whose ts is further in the future than '
          'this', ge(0.0)),
    Param('settle_s', 2.0, 'a file found at start-up that does not parse yet is retried '
          'after this many seconds without changes', gt(0.0)),
    Param('hold_without_subscriber', True, 'keep events in the ledger until v2x/alert_out '
          'has a subscriber (a VOLATILE topic drops them otherwise)'),
    Param('ledger_retention_s', 7 * 24 * 3600.0, 'how long accepted keys are remembered '
          '(idempotency window)', gt(0.0)),
)
_D = defaults(PARAMETERS)


@dataclass(frozen=True)
class IntakeSettings:
    """Every parameter of event_intake, read once at start-up (defaults: PARAMETERS)."""

    events_dir: str = _D['events_dir']
    http_enabled: bool = _D['http_enabled']
    http_host: str = _D['http_host']
    http_port: int = _D['http_port']
    token_file: str = _D['token_file']
    token_file_create: bool = _D['token_file_create']
    token_env: str = _D['token_env']
    http_insecure: bool = _D['http_insecure']
    state_dir: str = _D['state_dir']
    default_validity_s: float = _D['default_validity_s']
    max_clock_skew_s: float = _D['max_clock_skew_s']
    settle_s: float = _D['settle_s']
    hold_without_subscriber: bool = _D['hold_without_subscriber']
    ledger_retention_s: float = _D['ledger_retention_s']

    def _beside_events_dir(self, name: str) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(self.events_dir)), name)

    @property
    def processed_dir(self) -> str:
        """Where valid files go: processed/ beside events_dir."""
        return self._beside_events_dir(PROCESSED)

    @property
    def failed_dir(self) -> str:
        """Where invalid files go, each with a .error.txt: failed/ beside events_dir."""
        return self._beside_events_dir(FAILED)

    @property
    def ledger_path(self) -> str:
        """The SQLite file; state_dir '' means an intake_state/ beside events_dir."""
        state_dir = self.state_dir or self._beside_events_dir('intake_state')
        return os.path.join(state_dir, LEDGER_NAME)

    def validate(self) -> None:
        """Raise ParameterError naming the first bad parameter (rows' checks, then the
        combinations)."""
        for row in PARAMETERS:
            check_value(row, getattr(self, row.name))
        if not self.events_dir and not self.http_enabled:
            raise ParameterError('events_dir', "'' (directory intake off) and http_enabled "
                                 'false leave nothing to do')
        if not self.events_dir and not self.state_dir:
            raise ParameterError('state_dir', "must be given when events_dir is ''")
        if self.http_enabled and not self.http_host:
            raise ParameterError('http_host', 'must not be empty')


def load_token(settings: IntakeSettings, environ: Mapping[str, str]) -> str | None:
    """The HTTP bearer token from token_file, else from $token_env; None = no auth."""
    if not settings.http_enabled:
        return None
    token = None
    if settings.token_file and settings.token_file_create:
        make_token_file(settings.token_file)
    if settings.token_file:
        try:  # the protocol's rule for secret files: owner only, with the chmod that fixes it
            keys.check_private_file(settings.token_file, 'token file')
        except keys.KeyConfigError as exc:
            raise ParameterError('token_file', str(exc)) from None
        try:
            with open(settings.token_file, encoding='utf-8') as f:
                token = f.read().strip()
        except OSError as exc:
            raise ParameterError('token_file', f'cannot read it: {exc.strerror}') from None
        except UnicodeDecodeError as exc:  # say where, never what: the bytes are the secret
            raise ParameterError('token_file', f'not UTF-8 text (bad byte at offset '
                                f'{exc.start})') from None
        if not token:
            raise ParameterError('token_file', 'the file is empty')
    elif settings.token_env:
        token = environ.get(settings.token_env, '').strip() or None
    if token is None and not settings.http_insecure:
        raise ParameterError('token_file', 'no HTTP bearer token: give token_file, or set $'
                            f'{settings.token_env or "V2X_INTAKE_TOKEN"} (token_env), or set '
                            'http_insecure true to accept unauthenticated posts')
    if token is not None:
        where = ('token_file', 'the token in it') if settings.token_file else \
            ('token_env', f'${settings.token_env}')
        check_token(token, *where)
    return token


# What deploy/rsu.env.example ships: a deployment that kept it has no secret at all.
TOKEN_PLACEHOLDERS = frozenset({'change-me-to-a-random-string'})
MIN_TOKEN_CHARS = 16
MAKE_TOKEN = 'head -c 24 /dev/urandom | base64'


def make_token_file(path: str) -> bool:
    """Write a random token to path (mode 0600, its directory made 0700 when missing,
    never over an existing file); True when it was made. What cannot be made is a
    ParameterError naming token_file."""
    token = base64.b64encode(secrets.token_bytes(24)).decode()  # as MAKE_TOKEN makes one
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ParameterError('token_file', f'cannot make {path}: {exc.strerror}') from None
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(token + '\n')
    return True


def check_token(token: str, name: str, what: str) -> None:
    """Refuse a bearer token anyone could guess: the example's placeholder or fewer than
    MIN_TOKEN_CHARS characters; the message names the command that makes a good one and
    never shows the token."""
    if token in TOKEN_PLACEHOLDERS or token.lower().startswith('change-me'):
        problem = "is the example's placeholder (deploy/rsu.env.example), not a secret"
    elif len(token) < MIN_TOKEN_CHARS:
        problem = (f'is {len(token)} characters long: a bearer token needs at least '
                   f'{MIN_TOKEN_CHARS}')
    else:
        return
    raise ParameterError(name, f'{what} {problem}; make a random one with: {MAKE_TOKEN}')


# What became of one event (past tense, as the node logs and the HTTP answer say it).
@dataclass(frozen=True)
class EventPublished:
    """Recorded and published on v2x/alert_out."""

    key: str
    status: str = 'accepted'
    defaulted: tuple[str, ...] = ()  # fields absent from the event, given the seed's defaults


@dataclass(frozen=True)
class EventHeld:
    """Recorded; published as soon as v2x/alert_out has a subscriber."""

    key: str
    status: str = 'queued'
    defaulted: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventDuplicate:
    """The key was accepted before: nothing published again."""

    key: str
    status: str = 'duplicate'


@dataclass(frozen=True)
class FileRejected:
    """The file went to failed/ with a sibling .error.txt."""

    name: str
    error: IntakeError


@dataclass(frozen=True)
class FileDeferred:
    """A file seen by the start-up scan that is still being written: look again later."""

    name: str


@dataclass(frozen=True)
class FileVanished:
    """The file was gone by the time it was read (already moved, or deleted)."""

    name: str


Outcome = EventPublished | EventHeld | EventDuplicate
FileOutcome = Outcome | FileRejected | FileDeferred | FileVanished


def is_candidate(name: str) -> bool:
    """A finished event file: *.json, not hidden (editors' and rsync's temporary names)."""
    return name.endswith('.json') and not name.startswith('.') and len(name) > len('.json')


def unique_path(directory: str, name: str) -> str:
    """directory/name, or directory/<stem>.<n><ext> when that name is taken."""
    path = os.path.join(directory, name)
    stem, ext = os.path.splitext(name)
    n = 1
    while os.path.lexists(path) or os.path.lexists(path + '.error.txt'):
        path = os.path.join(directory, f'{stem}.{n}{ext}')
        n += 1
    return path


def move_into(path: str, directory: str) -> str:
    """Move a file into directory under a free name; returns the new path.

    Hard link + unlink rather than rename: a rename out of the watched directory is an
    IN_MOVED_FROM, which watchdog holds 0.5 s to pair, delaying every event behind it.
    A crash between link and unlink leaves the same inode in both places; the retry
    then only unlinks.
    """
    name = os.path.basename(path)
    stem, ext = os.path.splitext(name)
    for n in itertools.count():
        target = os.path.join(directory, name if n == 0 else f'{stem}.{n}{ext}')
        if os.path.lexists(target + '.error.txt'):
            continue
        try:
            os.link(path, target)
        except FileExistsError:
            if os.path.samefile(path, target):
                break
            continue
        except OSError as exc:  # a filesystem without hard links
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise
            target = unique_path(directory, name)
            shutil.move(path, target)  # copies when processed/ is on another filesystem
            return target
        break
    os.unlink(path)
    return target


def error_text(name: str, error: IntakeError, now: float) -> str:
    """The content of failed/<name>.error.txt."""
    return (f'file: {name}\nerror: {error.kind}\nfield: {error.field or "(whole file)"}\n'
            f'detail: {error.reason}\nat: {iso(now)}\n')


class Intake:
    """Validate, record, publish; one lock keeps the ledger and the topic in step."""

    def __init__(self, settings: IntakeSettings, ledger: Ledger,
                 publish: Callable[[IntakeEvent], None],
                 can_publish: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.time,
                 after_publish: Callable[[], None] = lambda: None):
        self.settings = settings
        self.ledger = ledger
        self._publish = publish
        self._can_publish = can_publish
        self._clock = clock
        # Called outside the lock once rows are marked published (the node paces a burst
        # there: a wait in it never widens the duplicate window nor blocks other threads).
        self._after_publish = after_publish
        self._lock = threading.Lock()
        # Every key exists from the start: other threads only change values, so a snapshot
        # taken while they count never sees the dict change size.
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self.held = len(ledger.pending())
        self.last_error = ''

    # -- any origin ----------------------------------------------------------------------
    def handle(self, data: bytes, origin: str, source: str,
               fallback_key: str | None = None) -> Outcome:
        """One event's bytes -> its outcome; raises IntakeError for the sender's mistakes."""
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidField('', f'{len(data)} bytes is more than {MAX_EVENT_BYTES}')
        doc = load_json(data)
        check_depth(doc)
        key = self._key(doc, fallback_key)
        # A retry of something already accepted is a duplicate even if it expired since.
        if self.ledger.get(key) is not None:
            self.stats['duplicate'] += 1
            return EventDuplicate(key)
        now = self._clock()
        try:
            event = parse_event(doc, now, self.settings.default_validity_s,
                                self.settings.max_clock_skew_s)
            record = {'event': event.to_record(), 'received_at': now}
            json.dumps(record)  # what the ledger will store: fail here, not half-way there
        except IntakeError:
            raise
        except (TypeError, ValueError, RecursionError, KeyError, AttributeError) as exc:
            # Whatever a sender managed to put in the bytes, it is their event that is bad.
            raise InvalidField('', f'cannot read this event ({type(exc).__name__}: '
                                   f'{str(exc)[:160]})') from None
        with self._lock:
            if not self.ledger.add(key, origin, source, record, now):
                self.stats['duplicate'] += 1
                return EventDuplicate(key)
            self.stats[f'accepted_{origin}'] += 1
            self.held += 1
            self._flush_locked()
            state = self.ledger.get(key).state
        self._after_publish()
        if state == PENDING:
            return EventHeld(key, defaulted=event.defaulted)
        return EventPublished(key, defaulted=event.defaulted)

    @staticmethod
    def _key(doc: Any, fallback_key: str | None) -> str:
        event_id = doc.get('event_id') if isinstance(doc, dict) else None
        if isinstance(event_id, str) and event_id:
            return f'id:{event_id}'
        return fallback_key or f'once:{uuid.uuid4()}'

    def flush(self) -> int:
        """Publish held events if a subscriber is there now; returns how many went out."""
        with self._lock:
            sent = self._flush_locked()
        if sent:
            self._after_publish()
        return sent

    def _flush_locked(self) -> int:
        if self.held == 0 or not self._can_publish():
            return 0
        sent = 0
        for row in self.ledger.pending():
            event = IntakeEvent.from_record(row.record['event'])
            now = self._clock()
            if event.expires_at <= now:
                # Held past its validity (no gateway for that long): publishing is pointless.
                self.ledger.mark(row.key, EXPIRED, now)
                self.stats['expired_unsent'] += 1
            else:
                self._publish(event)
                self.ledger.mark(row.key, PUBLISHED, now)
                self.stats['published'] += 1
                sent += 1
        self.held = 0
        return sent

    # -- the events directory ---------------------------------------------------------------
    def process_file(self, path: str, settled: bool = True) -> FileOutcome:
        """Handle one dropped file and move it to processed/ or failed/."""
        directory, name = os.path.split(path)
        if os.path.islink(path):
            return self._reject(directory, name, InvalidField('', 'a symbolic link: only '
                                                                 'regular files are read'))
        try:
            with open(path, 'rb') as f:
                data = f.read(MAX_EVENT_BYTES + 1)
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return FileVanished(name)
        fallback = 'sha256:' + hashlib.sha256(data).hexdigest()
        try:
            outcome = self.handle(data, 'file', name, fallback)
        except BadJson as error:
            if not settled and self._clock() - mtime < self.settings.settle_s:
                return FileDeferred(name)
            return self._reject(directory, name, error)
        except IntakeError as error:
            return self._reject(directory, name, error)
        move_into(path, self.settings.processed_dir)
        return outcome

    def _reject(self, directory: str, name: str, error: IntakeError) -> FileRejected:
        path = os.path.join(directory, name)
        failed = move_into(path, self.settings.failed_dir)
        with open(failed + '.error.txt', 'w', encoding='utf-8') as f:
            f.write(error_text(name, error, self._clock()))
        self.stats['failed_file'] += 1
        self.last_error = f'{name}: {error}'
        return FileRejected(name, error)

    def snapshot(self) -> dict[str, int]:
        """The counters, safe to call while other threads count."""
        return {key: self.stats[key] for key in STAT_KEYS}

    def prune(self) -> int:
        """Forget ledger rows older than ledger_retention_s."""
        return self.ledger.prune(self._clock() - self.settings.ledger_retention_s)
