"""Intake core without ROS: files to processed/ or failed/, the ledger, every crash window."""

import json
import os
import subprocess

import pytest

from v2x_common.logbudget import LogBudget
from v2x_common.params import ParameterError
from v2x_intake.core import (
    EventDuplicate,
    EventHeld,
    EventPublished,
    FileDeferred,
    FileRejected,
    FileVanished,
    Intake,
    IntakeSettings,
    is_candidate,
    load_token,
)
from v2x_intake.ledger import EXPIRED, PENDING, PUBLISHED, Ledger
from v2x_intake.schema import IntakeEvent, parse_event

NOW = 1_800_000_000.0


class Clock:
    """A settable clock (the core takes its time as an argument)."""

    def __init__(self, t=NOW):
        self.t = t

    def __call__(self):
        return self.t


def event_bytes(road='A', **changes) -> bytes:
    doc = {'ts': NOW - 1.0, 'type': 'collision', 'severity': 'high', 'lat': 37.12,
           'lon': 127.12, 'road': road, 'distance_m': 500, 'clip_hint': True, **changes}
    return json.dumps(doc).encode()


@pytest.fixture
def env(tmp_path):
    """An events dir with processed/ and failed/, a ledger, and a recording publisher."""
    events = tmp_path / 'events'
    for sub in ('events', 'processed', 'failed'):
        (tmp_path / sub).mkdir()
    settings = IntakeSettings(events_dir=str(events), state_dir=str(tmp_path / 'state'))

    class Env:
        published: list[IntakeEvent] = []
        clock = Clock()
        subscribed = True

        def intake(self):
            """A fresh Intake on the same ledger file: what a restart sees."""
            self.ledger = Ledger(settings.ledger_path)
            return Intake(settings, self.ledger, self.published.append,
                          lambda: self.subscribed, self.clock)

        def drop(self, name, data):
            path = events / name
            path.write_bytes(data)
            return str(path)

    e = Env()
    e.published = []
    e.dir = events
    e.processed, e.failed = tmp_path / 'processed', tmp_path / 'failed'
    yield e
    e.ledger.close()


def test_valid_file_is_published_and_moved(env):
    """A valid file is published once, moved to processed/, recorded with its extras."""
    intake = env.intake()
    path = env.drop('a.json', event_bytes(camera=7))
    outcome = intake.process_file(path)
    assert isinstance(outcome, EventPublished)
    assert [e.road for e in env.published] == ['A']
    assert not os.path.exists(path)
    assert json.loads((env.processed / 'a.json').read_bytes())['camera'] == 7
    row = env.ledger.get(outcome.key)
    assert row.state == PUBLISHED and row.record['event']['extra'] == {'camera': 7}


@pytest.mark.parametrize('data, field', [
    (b'{"ts": ', ''),                                   # bad JSON
    (event_bytes(clip_hint='yes'), 'clip_hint'),        # wrong type
    (event_bytes(type='meteor'), 'type'),               # unknown type value
    (event_bytes(ts=NOW - 700), 'ts'),                  # expired
    (b'{"ts": 1}' + b' ' * 70000, ''),                  # too large
    (b'[1, 2]', ''),                                    # an array (was a TypeError)
    (b'[]', ''),                                        # an empty array
    (event_bytes(x=[]).replace(b'[]', b'[' * 700 + b']' * 700), 'x'),  # was RecursionError
    (event_bytes(x={}).replace(b'{}', b'{"a":' * 700 + b'1' + b'}' * 700), 'x'),
    (b'[' * 5000 + b']' * 5000, ''),                    # deeper than json can parse
])
def test_invalid_file_goes_to_failed_with_reason(env, data, field):
    """An invalid file lands in failed/ beside an .error.txt naming the field; nothing sent."""
    intake = env.intake()
    outcome = intake.process_file(env.drop('bad.json', data))
    assert isinstance(outcome, FileRejected) and outcome.error.field == field
    assert (env.failed / 'bad.json').read_bytes() == data
    text = (env.failed / 'bad.json.error.txt').read_text()
    assert f'field: {field or "(whole file)"}' in text
    assert env.published == [] and env.ledger.counts() == {}


def test_symlink_is_not_followed(env, tmp_path):
    """A symbolic link in the events dir goes to failed/ unread (it could point anywhere)."""
    target = tmp_path / 'elsewhere.json'
    target.write_bytes(event_bytes())
    os.symlink(target, env.dir / 'link.json')
    outcome = env.intake().process_file(str(env.dir / 'link.json'))
    assert isinstance(outcome, FileRejected) and 'symbolic link' in outcome.error.reason
    assert os.path.islink(env.failed / 'link.json') and env.published == []


def test_utf8_bom_is_accepted(env):
    """A file saved with a UTF-8 byte order mark (Windows editors) is still an event."""
    outcome = env.intake().process_file(env.drop('bom.json', b'\xef\xbb\xbf' + event_bytes()))
    assert isinstance(outcome, EventPublished)


def test_same_content_or_same_event_id_publishes_once(env):
    """Identical bytes under two names, or one event_id in two files, publish once."""
    intake = env.intake()
    assert isinstance(intake.process_file(env.drop('a.json', event_bytes())), EventPublished)
    assert isinstance(intake.process_file(env.drop('b.json', event_bytes())), EventDuplicate)
    ids = [intake.process_file(env.drop(f'id{i}.json', event_bytes(road=str(i), event_id='x')))
           for i in range(2)]
    assert [type(o) for o in ids] == [EventPublished, EventDuplicate]
    assert len(env.published) == 2
    counts = intake.snapshot()
    assert (counts['published'], counts['duplicate'], counts['accepted_file']) == (2, 2, 2)
    assert sorted(os.listdir(env.processed)) == ['a.json', 'b.json', 'id0.json',
                                                         'id1.json']


def test_name_reused_later_keeps_both_files(env):
    """A new event under a name already in processed/ is published and kept as a.1.json."""
    intake = env.intake()
    intake.process_file(env.drop('a.json', event_bytes(road='first')))
    intake.process_file(env.drop('a.json', event_bytes(road='second')))
    assert [e.road for e in env.published] == ['first', 'second']
    assert sorted(os.listdir(env.processed)) == ['a.1.json', 'a.json']


def test_crash_after_record_before_publish(env):
    """A pending row (crash before publish) is published at restart, and only once."""
    data = event_bytes(event_id='e1')
    path = env.drop('a.json', data)
    first = env.intake()
    event = parse_event(data, NOW)
    assert first.ledger.add('id:e1', 'file', 'a.json', {'event': event.to_record()}, NOW)
    first.ledger.close()
    again = env.intake()
    assert again.held == 1
    assert again.flush() == 1
    assert isinstance(again.process_file(path), EventDuplicate)
    assert [e.event_id for e in env.published] == ['e1']
    assert os.listdir(env.processed) == ['a.json']


def test_crash_after_publish_before_move(env):
    """A published row with its file still there: moved at restart, not published again."""
    path = env.drop('a.json', event_bytes())
    first = env.intake()
    first.process_file(path)
    os.replace(env.processed / 'a.json', path)  # as if the move never happened
    first.ledger.close()
    env.clock.t += 3600  # long enough for the event to have expired meanwhile
    outcome = env.intake().process_file(path)
    assert isinstance(outcome, EventDuplicate)
    assert len(env.published) == 1 and os.listdir(env.failed) == []


def test_crash_between_link_and_unlink(env):
    """The file linked into processed/ but still in the events dir: only unlinked at restart."""
    path = env.drop('a.json', event_bytes())
    first = env.intake()
    first.process_file(path)
    os.link(env.processed / 'a.json', path)  # as if the unlink never happened
    first.ledger.close()
    assert isinstance(env.intake().process_file(path), EventDuplicate)
    assert os.listdir(env.processed) == ['a.json'] and not os.path.exists(path)
    assert len(env.published) == 1


def test_events_are_held_without_subscriber_then_sent_in_order(env):
    """With nobody listening events are held; they go out oldest first once one listens."""
    env.subscribed = False
    intake = env.intake()
    outcomes = [intake.handle(event_bytes(road=r), 'http', 'test') for r in 'xyz']
    assert all(isinstance(o, EventHeld) for o in outcomes) and env.published == []
    assert intake.flush() == 0
    env.subscribed = True
    assert intake.flush() == 3
    assert [e.road for e in env.published] == ['x', 'y', 'z'] and intake.held == 0


def test_held_event_that_expires_is_not_sent(env):
    """An event held past its validity is marked expired, never published."""
    env.subscribed = False
    intake = env.intake()
    key = intake.handle(event_bytes(ttl_s=5), 'http', 'test').key
    env.clock.t += 10
    env.subscribed = True
    assert intake.flush() == 0
    assert env.ledger.get(key).state == EXPIRED and env.published == []


def test_http_without_event_id_is_not_deduplicated(env):
    """Two posts without event_id are two events; with the same event_id one."""
    intake = env.intake()
    assert intake.handle(event_bytes(), 'http', 'c').key != intake.handle(
        event_bytes(), 'http', 'c').key
    assert isinstance(intake.handle(event_bytes(event_id='k'), 'http', 'c'), EventPublished)
    assert isinstance(intake.handle(event_bytes(event_id='k'), 'http', 'c'), EventDuplicate)
    assert len(env.published) == 3


def test_truncated_file_from_the_scan_is_deferred_until_settled(env):
    """A young, unparsable file found by the start-up scan waits; a settled one fails."""
    intake = env.intake()
    path = env.drop('half.json', b'{"ts": 17')
    env.clock.t = os.stat(path).st_mtime + 0.5
    assert isinstance(intake.process_file(path, settled=False), FileDeferred)
    assert os.path.exists(path)
    env.clock.t += 5
    assert isinstance(intake.process_file(path, settled=False), FileRejected)
    assert isinstance(intake.process_file(path), FileVanished)


def test_ledger_survives_reopen_and_prunes(env):
    """Rows persist across a reopen; prune forgets finished rows past retention only."""
    intake = env.intake()
    intake.handle(event_bytes(event_id='old'), 'http', 'c')
    env.subscribed = False
    intake.handle(event_bytes(event_id='held'), 'http', 'c')
    env.ledger.close()
    env.clock.t += 8 * 24 * 3600
    again = env.intake()
    assert env.ledger.get('id:old').state == PUBLISHED
    assert again.prune() == 1
    assert env.ledger.get('id:old') is None and env.ledger.get('id:held').state == PENDING


@pytest.mark.parametrize('name, ok', [
    ('a.json', True), ('.a.json', False), ('a.json.tmp', False), ('a.json~', False),
    ('a.part', False), ('.json', False), ('event 1.json', True),
])
def test_candidate_names(name, ok):
    """Only finished *.json names are taken; temporary and hidden names are ignored."""
    assert is_candidate(name) is ok


@pytest.mark.parametrize('changes, name', [
    ({'http_port': 70000}, 'http_port'),
    ({'default_validity_s': 0.0}, 'default_validity_s'),
    ({'settle_s': -1.0}, 'settle_s'),
    ({'events_dir': '', 'http_enabled': False}, 'events_dir'),
    ({'events_dir': ''}, 'state_dir'),
    ({'http_host': ''}, 'http_host'),
])
def test_bad_settings_name_the_parameter(changes, name):
    """validate() refuses a bad value and names its parameter."""
    with pytest.raises(ParameterError) as info:
        IntakeSettings(**changes).validate()
    assert info.value.name == name


def test_token_from_file_env_or_refusal(tmp_path):
    """The token comes from token_file, else $token_env; none at all is refused."""
    tok = tmp_path / 'tok'
    tok.write_text('s3cret-from-the-file\n')
    tok.chmod(0o600)
    env = {'V2X_INTAKE_TOKEN': 'from-the-environment'}
    assert load_token(IntakeSettings(token_file=str(tok)), env) == 's3cret-from-the-file'
    assert load_token(IntakeSettings(), env) == 'from-the-environment'
    with pytest.raises(ParameterError) as info:
        load_token(IntakeSettings(), {})
    assert info.value.name == 'token_file' and 'V2X_INTAKE_TOKEN' in str(info.value)
    with pytest.raises(ParameterError):
        load_token(IntakeSettings(token_file=str(tmp_path / 'missing')), {})
    assert load_token(IntakeSettings(http_insecure=True), {}) is None
    assert load_token(IntakeSettings(http_enabled=False), {}) is None


@pytest.mark.parametrize('token, words', [
    ('change-me-to-a-random-string', "example's placeholder"),   # deploy/rsu.env.example
    ('Change-Me-please-0123456789', "example's placeholder"),
    ('s3cret', 'is 6 characters long'),
    ('0123456789abcde', 'is 15 characters long'),
])
def test_placeholder_or_short_token_is_refused_with_the_command(tmp_path, token, words):
    """The example's placeholder and a token shorter than 16 characters are refused, from
    the environment and from token_file alike, naming the command that makes a good one
    and never the token itself; 16 characters are enough."""
    with pytest.raises(ParameterError) as info:
        load_token(IntakeSettings(), {'V2X_INTAKE_TOKEN': token})
    message = str(info.value)
    assert info.value.name == 'token_env' and '$V2X_INTAKE_TOKEN' in message
    assert words in message and 'head -c 24 /dev/urandom | base64' in message
    assert token not in message
    tok = tmp_path / 'tok'
    tok.write_text(token + '\n')
    tok.chmod(0o600)
    with pytest.raises(ParameterError) as info:
        load_token(IntakeSettings(token_file=str(tok)), {})
    assert info.value.name == 'token_file' and words in str(info.value)
    good = subprocess.run(['bash', '-c', 'head -c 24 /dev/urandom | base64'],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert load_token(IntakeSettings(), {'V2X_INTAKE_TOKEN': good}) == good
    assert load_token(IntakeSettings(), {'V2X_INTAKE_TOKEN': '0123456789abcdef'})


def test_token_file_create_makes_a_private_random_token_once(tmp_path):
    """token_file_create makes a missing token_file (and its directory) with a random token
    event_intake accepts (mode 0600), keeps an existing file as it is, and names
    token_file when it cannot be made."""
    path = tmp_path / 'intake.token'
    settings = IntakeSettings(token_file=str(path), token_file_create=True)
    token = load_token(settings, {})
    assert len(token) >= 16 and path.read_text() == token + '\n'
    assert oct(path.stat().st_mode & 0o777) == '0o600'
    assert load_token(settings, {}) == token   # kept, not made again
    assert load_token(IntakeSettings(token_file=str(tmp_path / 'other'), token_file_create=True),
                      {}) != token
    deep = tmp_path / 'lab/rsu/intake.token'   # the lab's directory is made (0700)
    assert load_token(IntakeSettings(token_file=str(deep), token_file_create=True), {})
    assert oct(deep.parent.stat().st_mode & 0o777) == '0o700'
    (tmp_path / 'file').write_text('')
    with pytest.raises(ParameterError) as info:
        load_token(IntakeSettings(token_file=str(tmp_path / 'file/t'), token_file_create=True),
                   {})
    assert info.value.name == 'token_file' and 'Not a directory' in str(info.value)
    with pytest.raises(ParameterError):  # without it a missing file stays an error
        load_token(IntakeSettings(token_file=str(tmp_path / 'absent')), {})


def test_token_file_not_utf8_names_it_without_its_content(tmp_path):
    """A token file that is not UTF-8 is a ParameterError naming token_file (no traceback),
    and the message shows none of the file's bytes."""
    tok = tmp_path / 'tok'
    tok.write_bytes(b'sec\xffret-\xfe\xfd')
    tok.chmod(0o600)
    with pytest.raises(ParameterError) as info:
        load_token(IntakeSettings(token_file=str(tok)), {})
    assert info.value.name == 'token_file' and 'UTF-8' in str(info.value)
    assert not any(part in str(info.value) for part in ('sec', 'ret', 'xff', '0xff'))


def test_default_dirs_are_beside_events_dir():
    """processed/, failed/ and (state_dir '') the ledger live next to events_dir."""
    settings = IntakeSettings(events_dir='/opt/v2x/events/')
    assert settings.processed_dir == '/opt/v2x/processed'
    assert settings.failed_dir == '/opt/v2x/failed'
    assert settings.ledger_path == '/opt/v2x/intake_state/event_intake.sqlite3'


def test_log_budget_logs_a_burst_then_counts():
    """The first `burst` lines of a window are logged, the rest counted and said once the
    window is over, and a new window logs again."""
    clock = Clock(0.0)
    budget = LogBudget(burst=3, window_s=10.0, clock=clock)
    assert [budget.allow() for _ in range(5)] == [True, True, True, False, False]
    assert budget.take_suppressed() == 0  # window not over yet
    clock.t = 10.0
    assert budget.take_suppressed() == 2 and budget.take_suppressed() == 0
    assert budget.allow() and budget.suppressed_total == 2


@pytest.mark.parametrize('mode', [0o644, 0o640, 0o604, 0o620])
def test_token_file_readable_by_others_is_refused_with_the_chmod(tmp_path, mode):
    """A token file group or others can read or write is refused, as ssh refuses such a
    private key, with the chmod that fixes it (was: accepted without a word)."""
    tok = tmp_path / 'tok'
    tok.write_text('s3cret-0123456789\n')
    tok.chmod(mode)
    with pytest.raises(ParameterError) as info:
        load_token(IntakeSettings(token_file=str(tok)), {})
    assert info.value.name == 'token_file'
    assert f'(mode {mode:04o})' in str(info.value) and f'chmod 600 {tok}' in str(info.value)
    assert 's3cret' not in str(info.value)
    tok.chmod(0o400)
    assert load_token(IntakeSettings(token_file=str(tok)), {}) == 's3cret-0123456789'


def test_outcome_names_the_fields_that_took_seed_defaults(env):
    """An event of the seed's watcher (only type) is accepted; its outcome names the fields
    that took the seed's defaults (the node logs them); a full event names none."""
    intake = env.intake()
    sparse = intake.handle(b'{"type": "fire"}', 'http', '127.0.0.1')
    assert isinstance(sparse, EventPublished)
    assert sparse.defaulted == ('clip_hint', 'distance_m', 'lat', 'lon', 'road', 'severity',
                                'ts')
    assert env.published[-1].road == 'segment_A' and env.published[-1].ts == NOW
    assert intake.handle(event_bytes(), 'http', '127.0.0.1').defaulted == ()
