"""The console's HTTP layer without ROS: auth, CSRF, bad bodies, archive files, the stream."""

import asyncio
import base64
import hashlib
import json
import threading

from fastapi.testclient import TestClient
import pytest

from v2x_console.actions import Credentials
from v2x_console.archive import ArchiveReader
from v2x_console.core import ConsoleState, Event
from v2x_console.http_app import (
    MAX_STREAMS_PER_CLIENT,
    EventStream,
    Hub,
    NotCancellable,
    NotHeld,
    StreamRefused,
    content_security_policy,
    create_app,
    parse_allowed_hosts,
)

TOKEN = b'http-test-token-0123456789'
NOW = 1_800_000_000.0


class Recorder:
    """Actions that record what they were asked (the node's real ones need ROS)."""

    def __init__(self):
        self.calls = []

    def inject(self, request):
        self.calls.append(('inject', request))
        return {'status': 'published'}

    def cancel(self, source_id, sequence):
        if source_id != 'rsu_a':
            raise NotCancellable(f'no active alert {source_id}/{sequence}')
        self.calls.append(('cancel', source_id, sequence))
        return {'status': 'published'}

    def request_clip(self, request):
        self.calls.append(('clip', request))
        return {'accepted': True, 'path': '/x.mp4', 'message': ''}

    def resolve_held(self, hold_id, confirm, by):
        if hold_id != 'h-1':
            raise NotHeld(f'no held event {hold_id!r}')
        self.calls.append(('held', hold_id, confirm, by))
        return {'status': 'confirmed' if confirm else 'dismissed', 'id': hold_id}


@pytest.fixture
def app(tmp_path):
    archive = tmp_path / 'archive'
    archive.mkdir()
    video = archive / 'accident_1800000000_rsu_a-1.mp4'
    video.write_bytes(bytes(range(256)) * 40)
    sidecar = {'clip_id': 'rsu_a-1', 't0': NOW, 'sha256': hashlib.sha256(
        video.read_bytes()).hexdigest(), 'duration_s': 3.0, 'gaps': [], 'error': ''}
    (archive / 'accident_1800000000_rsu_a-1.json').write_text(json.dumps(sidecar))
    (tmp_path / 'secret.mp4').write_bytes(b'outside the archive')
    state = ConsoleState()
    hub = Hub(lambda: state.snapshot(NOW))
    actions = Recorder()
    client = TestClient(create_app(lambda: state.snapshot(NOW), hub, ArchiveReader(
        str(archive)), actions, Credentials(TOKEN, ((b'ops', b'password-123'),)),
        held_jpeg={'h-1': b'\xff\xd8jpeg'}.get), base_url='http://127.0.0.1:8090')
    client.app_state_hub = hub
    return client, actions


AUTH = {'Authorization': f'Bearer {TOKEN.decode()}', 'X-V2X-Console': '1'}


@pytest.mark.parametrize('headers, status', [
    ({}, 401),                                                        # nothing
    ({'X-V2X-Console': '1'}, 401),                                    # CSRF header only
    ({'Authorization': 'Bearer wrong', 'X-V2X-Console': '1'}, 401),   # wrong token
    ({'Authorization': f'Bearer {TOKEN.decode()}'}, 403),             # no CSRF header
    ({**AUTH, 'Origin': 'http://evil.example'}, 403),                 # another origin
    ({**AUTH, 'Origin': 'http://127.0.0.1:8090'}, 202),               # same origin
    (AUTH, 202),                                                      # no Origin (curl)
    ({'Authorization': 'Basic ' + base64.b64encode(b'ops:password-123').decode(),
      'X-V2X-Console': '1'}, 202),                                    # basic user
])
def test_inject_needs_credentials_and_csrf_header(app, headers, status):
    """Only a valid credential plus the custom header from this origin may act."""
    client, actions = app
    response = client.post('/api/alerts', json={'type': 'fire'}, headers=headers)
    assert response.status_code == status, response.text
    assert len(actions.calls) == (1 if status == 202 else 0)


BASIC = {'Authorization': 'Basic ' + base64.b64encode(b'ops:password-123').decode(),
         'X-V2X-Console': '1'}


def test_confirm_and_dismiss_guarded_as_inject(app):
    """Confirm/dismiss of a held event: refused (401/403) without credentials, the CSRF
    header or from another origin; accepted with the token or a basic user (who is passed
    on); an unknown id is 404, a bad body 422; the snapshot is served while it waits."""
    client, actions = app
    for headers, status in [({}, 401), ({'X-V2X-Console': '1'}, 401),
                            ({'Authorization': 'Bearer wrong', 'X-V2X-Console': '1'}, 401),
                            ({'Authorization': f'Bearer {TOKEN.decode()}'}, 403),
                            ({**AUTH, 'Origin': 'http://evil.example'}, 403)]:
        for verb in ('confirm', 'dismiss'):
            response = client.post(f'/api/held/{verb}', json={'id': 'h-1'}, headers=headers)
            assert response.status_code == status, (verb, headers, response.text)
    assert actions.calls == []
    assert client.post('/api/held/confirm', json={'id': 'h-1'}, headers=AUTH).status_code == 202
    assert client.post('/api/held/dismiss', json={'id': 'h-1'}, headers=BASIC).status_code == 202
    assert actions.calls == [('held', 'h-1', True, 'token'), ('held', 'h-1', False, 'ops')]
    assert client.post('/api/held/confirm', json={'id': 'h-2'}, headers=AUTH).status_code == 404
    bad = client.post('/api/held/dismiss', json={'id': 5}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()['field'] == 'id'
    jpeg = client.get('/api/held/snapshot.jpg', params={'id': 'h-1'})
    assert jpeg.content == b'\xff\xd8jpeg' and jpeg.headers['content-type'] == 'image/jpeg'
    assert client.get('/api/held/snapshot.jpg', params={'id': 'h-2'}).status_code == 404


def test_bad_bodies_name_the_field(app):
    """A bad body is refused with 422 naming the field; nothing is published."""
    client, actions = app
    assert client.post('/api/alerts', json={'lat': 100}, headers=AUTH).json()['field'] == 'lat'
    response = client.post('/api/alerts', content=b'{not json', headers=AUTH)
    assert response.status_code == 422 and response.json()['field'] == 'body'
    assert client.post('/api/clips', json={'pre_s': -1}, headers=AUTH).status_code == 422
    assert actions.calls == []


def test_cancel_only_own_alerts(app):
    """Cancel reaches the node with the id; an unknown one is 404."""
    client, actions = app
    assert client.post('/api/alerts/rsu_a/7/cancel', headers=AUTH).status_code == 202
    assert client.post('/api/alerts/other/7/cancel', headers=AUTH).status_code == 404
    assert actions.calls == [('cancel', 'rsu_a', 7)]


def test_archive_files_by_listed_name_only(app):
    """Listed files are served (with ranges and verification); nothing else is."""
    client, _ = app
    [clip] = client.get('/api/archive').json()
    assert clip['video'] == 'accident_1800000000_rsu_a-1.mp4'
    part = client.get(f'/archive/{clip["video"]}', headers={'Range': 'bytes=10-19'})
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    assert client.get(f'/api/archive/{clip["stem"]}/verify').json()['ok'] is True
    for name in ('secret.mp4', '..%2Fsecret.mp4', 'accident_1800000000_rsu_a-1.txt'):
        assert client.get(f'/archive/{name}').status_code == 404, name
    attachment = client.get(f'/archive/{clip["sidecar"]}?download=true')
    assert 'attachment' in attachment.headers['content-disposition']


def test_hostile_sidecars_keep_the_api_json(tmp_path):
    """Sidecars with NaN, wrong types or broken JSON are listed with what is usable."""
    (tmp_path / 'accident_1_a.json').write_text('{"t0": NaN, "gaps": "x", "window": 3, '
                                                '"duration_s": Infinity, "sha256": 7}')
    (tmp_path / 'accident_2_b.json').write_text('{broken')
    (tmp_path / 'accident_3_c.json').write_text('[1, 2]')
    clips = ArchiveReader(str(tmp_path)).read()
    json.dumps(clips, allow_nan=False)
    by_stem = {c['stem']: c for c in clips}
    assert by_stem['accident_1_a']['t0'] is None and by_stem['accident_1_a']['gaps'] == []
    assert 'unreadable' in by_stem['accident_2_b']['error']
    assert by_stem['accident_3_c']['error'] == 'sidecar is not a JSON object'


def test_page_and_headers(app):
    """The page is served with a same-origin-only Content-Security-Policy."""
    client, _ = app
    page = client.get('/')
    assert page.status_code == 200 and 'initial-state' in page.text
    assert "default-src 'self'" in page.headers['content-security-policy']
    assert client.get('/static/app.js').status_code == 200


def test_loopback_console_refuses_other_host_names(app):
    """Bound to loopback, a request naming another host (DNS rebinding) is refused."""
    client, _ = app
    assert client.get('/api/state', headers={'Host': 'evil.example:8090'}).status_code == 400
    assert client.get('/api/state', headers={'Host': 'localhost:8090'}).status_code == 200


def test_tile_host_is_the_only_outside_source():
    """A tile URL adds its one host for images; nothing else leaves this origin."""
    csp = content_security_policy('https://tiles.example.org/{z}/{x}/{y}.png')
    assert "img-src 'self' data: https://tiles.example.org;" in csp
    assert "connect-src 'self'" in csp and 'example' not in content_security_policy('')


def test_stream_snapshot_then_events_and_slow_client_dropped():
    """A client gets the snapshot, then each event published from another thread; a client
    that falls more than max_queued events behind is dropped (it reconnects)."""
    state = ConsoleState()

    async def scenario():
        hub = Hub(lambda: state.snapshot(NOW), max_queued=3)
        stream = hub.events(hub.open('127.0.0.1'))
        first = await stream.__anext__()
        assert b'event: snapshot' in first
        threading.Thread(target=hub.publish, args=([Event('peers', [])],)).start()
        assert b'event: peers\ndata: []' in await asyncio.wait_for(stream.__anext__(), 5)
        hub.publish([Event('counts', {'n': i}) for i in range(5)])  # more than 3 queued
        await asyncio.sleep(0.05)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(stream.__anext__(), 5)
        assert hub.dropped_clients == 1 and hub.clients == 0
    asyncio.run(scenario())


def test_streams_capped_per_address_and_in_all():
    """A few streams per client address; when all are taken a newcomer replaces the
    oldest stream of the address holding the most (of those, the one that opened the most
    lately), and is refused when none holds more than it does."""
    async def scenario():
        hub = Hub(lambda: {}, max_streams=4, per_client=2)
        a1, a2 = hub.open('10.0.0.1', now=1), hub.open('10.0.0.1', now=2)
        with pytest.raises(StreamRefused, match='at most 2 per client address'):
            hub.open('10.0.0.1', now=3)
        b1, b2 = hub.open('10.0.0.2', now=4), hub.open('10.0.0.2', now=5)
        c1 = hub.open('10.0.0.3', now=6)        # 10.0.0.1 opened most: its oldest goes
        assert a1.get_nowait() is None and hub.clients == 4
        hub.open('10.0.0.4', now=7)             # now 10.0.0.2 holds the most
        assert b1.get_nowait() is None and a2.empty() and b2.empty() and c1.empty()
        with pytest.raises(StreamRefused, match='all 4 live streams are taken'):
            hub.open('10.0.0.3', now=8)         # it would hold 2: more than anyone
        assert hub.stats() == {'stream_clients': 4, 'stream_clients_dropped': 0,
                               'streams_refused': 2, 'streams_replaced': 2,
                               'streams_stalled': 0}
    asyncio.run(scenario())


def test_reconnecting_clients_do_not_displace_a_steady_stream():
    """Every stream taken, one per address: clients that keep reconnecting replace each
    other, never the operator's stream that opened once."""
    async def scenario():
        hub = Hub(lambda: {}, max_streams=4, per_client=4)
        operator = hub.open('192.0.2.1', now=0)
        for i in range(3):
            hub.open(f'198.51.100.{i}', now=0.1 * (i + 1))
        for t in range(1, 120):                 # 10 more addresses, each reconnecting
            hub.open(f'198.51.100.{3 + t % 10}', now=t)
            assert operator.empty() and hub.clients == 4
        assert hub.replaced_streams == 119
    asyncio.run(scenario())


def test_refused_stream_is_429_and_closes_the_connection(app):
    """Beyond the per-address cap the stream is refused with 429, Retry-After and
    Connection: close (the slot is not held)."""
    client, _ = app
    hub = client.app_state_hub
    for _ in range(MAX_STREAMS_PER_CLIENT):
        hub._clients[object()] = 'testclient'  # streams held by this client address
    response = client.get('/api/events')
    assert response.status_code == 429 and response.json()['error'] == 'too_many_streams'
    assert response.headers['connection'] == 'close' and response.headers['retry-after']


@pytest.mark.parametrize('bind, host, ok', [
    ('0.0.0.0', 'console.example.org:8090', True),      # console_allowed_hosts
    ('0.0.0.0', 'x.ops.example.org', True),             # *.ops.example.org
    ('0.0.0.0', '192.168.1.20:8090', True),             # an address: nothing to rebind
    ('0.0.0.0', '[fe80::1]:8090', True),
    ('0.0.0.0', 'localhost:8090', True),
    ('0.0.0.0', 'attacker.example:8090', False),        # DNS rebinding
    ('0.0.0.0', 'example.org', False),
    ('0.0.0.0', 'ops.example.org.evil.example', False),
    ('0.0.0.0', '', False),
    ('127.0.0.1', 'attacker.example', False),
    ('127.0.0.1', '127.0.0.1:8090', True),
])
def test_host_names_allowed(tmp_path, bind, host, ok):
    """Only IP addresses, loopback names, this machine's names (bound beyond loopback)
    and console_allowed_hosts are answered; any other Host header is 400."""
    extra = parse_allowed_hosts('console.example.org, *.ops.example.org')
    client = TestClient(create_app(lambda: ConsoleState().snapshot(NOW),
                                   Hub(lambda: {}), ArchiveReader(''), Recorder(),
                                   Credentials(), bind=bind, extra_hosts=extra))
    response = client.get('/api/state', headers={'Host': host})
    assert response.status_code == (200 if ok else 400), response.text
    assert 'content-security-policy' in response.headers


@pytest.mark.parametrize('text', ['a b', 'http://x', 'x:80', '*', '-a.example'])
def test_bad_allowed_hosts_are_refused(text):
    """console_allowed_hosts names hosts or *.domain only: anything else is refused."""
    with pytest.raises(ValueError):
        parse_allowed_hosts(text)


def test_verification_one_at_a_time_per_client(app, monkeypatch):
    """While a client's verification hashes, its second is refused (429); it may verify
    again once the first is done."""
    client, _ = app
    stem = client.get('/api/archive').json()[0]['stem']
    started, release = threading.Event(), threading.Event()
    reader = ArchiveReader.verify

    def slow_verify(self, stem):
        started.set()
        release.wait(10)
        return reader(self, stem)
    monkeypatch.setattr(ArchiveReader, 'verify', slow_verify)
    first = []
    worker = threading.Thread(target=lambda: first.append(
        client.get(f'/api/archive/{stem}/verify')))
    worker.start()
    assert started.wait(10)
    second = client.get(f'/api/archive/{stem}/verify')
    assert second.status_code == 429 and second.json()['error'] == 'busy'
    release.set()
    worker.join(10)
    assert first[0].json()['ok'] is True
    assert client.get(f'/api/archive/{stem}/verify').json()['ok'] is True


def test_unread_stream_closed_and_gone_client_released():
    """A stream whose writes stay blocked (the client reads nothing) ends after stall_s,
    unfinished (the server then closes the connection); a client's disconnect ends its
    stream at once. Either way its slot is free."""
    async def scenario():
        hub = Hub(lambda: {'now': NOW})
        sent = []

        async def blocked_send(message):
            sent.append(message['type'])
            if message['type'] == 'http.response.body':
                await asyncio.sleep(60)  # the socket's buffers are full

        async def never_disconnects():
            await asyncio.sleep(60)
            return {'type': 'http.disconnect'}
        await asyncio.wait_for(EventStream(hub, hub.open('10.0.0.9'), stall_s=0.2)(
            {}, never_disconnects, blocked_send), 5)
        assert sent == ['http.response.start', 'http.response.body']
        assert hub.stalled_streams == 1 and hub.clients == 0

        async def reading_send(message):
            sent.append(message.get('more_body'))

        async def disconnects():
            await asyncio.sleep(0.1)
            return {'type': 'http.disconnect'}
        sent.clear()
        await asyncio.wait_for(EventStream(hub, hub.open('10.0.0.9'))(
            {}, disconnects, reading_send), 5)
        assert sent == [None, True, False] and hub.clients == 0
    asyncio.run(scenario())


def _metrics_client(bind):
    import threading

    from v2x_metrics.book import MetricsBook, NodeReport
    from v2x_metrics.exposition import Exposition
    book = MetricsBook('rsu-1')
    book.on_diagnostics([NodeReport('alert_gateway', 'OK', 'rsu', {'sent': '4'})], NOW)
    exposition = Exposition(book, threading.Lock(), clock=lambda: NOW)
    return TestClient(create_app(lambda: ConsoleState().snapshot(NOW), Hub(lambda: {}),
                                 ArchiveReader(''), Recorder(), Credentials(TOKEN, ()),
                                 bind=bind, metrics=exposition.render),
                      base_url='http://127.0.0.1:8090')


@pytest.mark.parametrize('bind, auth, status', [
    ('127.0.0.1', {}, 200),                 # loopback: open, as the page is
    ('0.0.0.0', {}, 401),                   # beyond loopback: it shows peer pseudonyms
    ('0.0.0.0', {'Authorization': 'Bearer wrong-token-0123456789'}, 401),
    ('0.0.0.0', {'Authorization': f'Bearer {TOKEN.decode()}'}, 200),
])
def test_metrics_are_served_in_the_prometheus_format_behind_the_token(bind, auth, status):
    """/metrics answers the host's families on a loopback console, and off loopback only
    with the console's token."""
    from prometheus_client.parser import text_string_to_metric_families
    response = _metrics_client(bind).get('/metrics', headers=auth)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers['content-type'].startswith('text/plain')
        names = {f.name for f in text_string_to_metric_families(response.text)}
        assert 'v2x_alert_gateway_sent' in names and 'v2x_node_level' in names
