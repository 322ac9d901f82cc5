"""Pure core: quadkeys, the topic scheme, tile subscriptions, publications, offline queue."""

import math

import pytest

from v2x_common.params import ParameterError
from v2x_federation import quadkey as qk
from v2x_federation import topics
from v2x_federation.config import make_config
from v2x_federation.publish import OFFLINE, OfflineQueue, Publication, RsuPublisher
from v2x_protocol.wire import AlertData

S = 1_000_000_000


def test_quadkey_matches_bing_reference():
    """Bing's documented example: tile (3, 5) at level 3 is quadkey 213, and back."""
    assert qk.quadkey(3, 5, 3) == '213'
    assert qk.tile_of_quadkey('213') == (3, 5, 3)


@pytest.mark.parametrize('lat,lon,zoom,expected', [
    (0.0, 0.0, 1, '3'),              # just south-east of (0, 0): the SE quarter
    (51.5, -0.12, 1, '0'),           # London: north-west quarter
    (-33.87, 151.21, 1, '3'),        # Sydney: south-east quarter
    (37.12345, 127.12345, 3, '132'),
])
def test_quadkey_of_positions(lat, lon, zoom, expected):
    """Positions land in the expected tiles."""
    assert qk.quadkey_of(lat, lon, zoom) == expected


def test_quadkey_prefix_property():
    """A deeper quadkey of a position starts with every shallower one (what # relies on)."""
    deep = qk.quadkey_of(37.12345, 127.12345, 18)
    for z in range(1, 18):
        assert deep.startswith(qk.quadkey_of(37.12345, 127.12345, z))


def test_neighbourhood_is_3x3_and_wraps():
    """Nine tiles around a tile; at the antimeridian it wraps; at the pole edge it is six."""
    key = qk.quadkey_of(37.12345, 127.12345, 16)
    hood = qk.neighbourhood(key)
    assert len(hood) == 9 and key in hood
    x, y, z = qk.tile_of_quadkey(key)
    assert {qk.tile_of_quadkey(k)[:2] for k in hood} == {
        (x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    east_edge = qk.quadkey((1 << 5) - 1, 10, 5)
    assert qk.quadkey(0, 10, 5) in qk.neighbourhood(east_edge)
    assert len(qk.neighbourhood(qk.quadkey(4, 0, 5))) == 6


@pytest.mark.parametrize('lat,lon,zoom', [
    (math.nan, 0.0, 10),    # unknown position
    (91.0, 0.0, 10),        # not a latitude
    (0.0, 181.0, 10),       # not a longitude
    (0.0, 0.0, 0),          # zoom below 1
    (0.0, 0.0, 24),         # zoom beyond MAX_ZOOM
])
def test_bad_positions_raise(lat, lon, zoom):
    """Bad positions and zooms raise InvalidPosition."""
    with pytest.raises(qk.InvalidPosition):
        qk.quadkey_of(lat, lon, zoom)


@pytest.mark.parametrize('key', ['', '0124', 'abc', '0' * 24])
def test_bad_quadkeys_raise(key):
    """Anything but 1..23 digits 0..3 is not a quadkey."""
    with pytest.raises(qk.InvalidPosition):
        qk.tile_of_quadkey(key)


def _matches(filt: str, topic: str) -> bool:
    """MQTT filter matching (the broker's rule) for the tests."""
    f, t = filt.split('/'), topic.split('/')
    for i, level in enumerate(f):
        if level == '#':
            return True
        if i >= len(t) or (level != '+' and level != t[i]):
            return False
    return len(f) == len(t)


def test_topic_round_trip_and_wildcard_tile():
    """An alert topic parses back; the tile filter of any ancestor tile matches it, a
    neighbour's does not."""
    key = qk.quadkey_of(37.12345, 127.12345, 18)
    topic = topics.alert_topic('v2x/kr', 'rsu_1', key, 'det/cam#1', 42)
    assert topic.startswith('v2x/kr/alert/rsu_1/' + '/'.join(key[:3]))
    assert topics.parse('v2x/kr', topic) == ('alert', 'rsu_1', key, ('det/cam#1', 42))
    assert _matches(topics.tile_filter('v2x/kr', key[:14]), topic)
    assert _matches(topics.tile_filter('v2x/kr', key), topic)
    other = qk.neighbourhood(key[:14])
    assert not any(_matches(topics.tile_filter('v2x/kr', k), topic) for k in other
                   if k != key[:14])
    status = topics.status_topic('v2x/kr', 'rsu_1', key)
    assert topics.parse('v2x/kr', status) == ('status', 'rsu_1', key, None)
    assert _matches(topics.status_filter('v2x/kr', key[:14]), status)
    assert [topics.kind_of('v2x/kr', t) for t in (topic, status,
                                                   'v2x/krx/alert/a', 'v2x/kr/other/a')] \
        == ['alert', 'status', '', '']


@pytest.mark.parametrize('topic', [
    'other/alert/rsu/0/1/a:1',      # another prefix
    'v2x/alert/rsu/0/4/a:1',        # digit 4 is not a quadkey digit
    'v2x/alert/rsu/0/1/a',          # no sequence
    'v2x/alert/rsu/a:1',            # no tile
    'v2x/status/rsu',               # no site tile
    'v2x/status/rsu/1/x',           # not a quadkey digit
])
def test_foreign_topics_rejected(topic):
    """Topics outside the scheme raise InvalidTopic."""
    with pytest.raises(topics.InvalidTopic):
        topics.parse('v2x', topic)


@pytest.mark.parametrize('prefix', ['', '/v2x', 'v2x/', 'v2x//a', 'v2x/+', 'v2x/#', '$SYS'])
def test_bad_prefixes(prefix):
    """Empty levels, wildcards and $-topics are refused as a prefix."""
    with pytest.raises(topics.InvalidTopic):
        topics.check_prefix(prefix)


def test_tile_subscriptions_follow_the_vehicle():
    """Alerts and statuses of nine tiles; moving within a tile changes nothing; moving one tile
    east swaps three columns' worth (3 added, 3 removed)."""
    subs = topics.TileSubscriptions('v2x', 14)
    added, removed = subs.moved_to(37.12345, 127.12345)
    centre = qk.quadkey_of(37.12345, 127.12345, 14)
    assert len(added) == 18 and removed == [] and topics.status_filter('v2x', centre) in added
    assert subs.moved_to(37.12346, 127.12346) == ([], [])
    width_deg = 360.0 / (1 << 14)
    added, removed = subs.moved_to(37.12345, 127.12345 + width_deg)
    assert len(added) == 6 and len(removed) == 6
    fixed = topics.TileSubscriptions('v2x', 14, ('1320',))
    assert fixed.moved_to(0.0, 0.0) == ([], [])
    assert fixed.filters == {topics.tile_filter('v2x', '1320'),
                             topics.status_filter('v2x', '1320')}


def _alert(**kw):
    base = dict(source_id='rsu_1', sequence=7, kind=1, severity=3, suggest=1,
                stamp_ns=100 * S, detection_time_ns=100 * S, validity_s=60.0,
                latitude=37.12345, longitude=127.12345)
    base.update(kw)
    return AlertData(**base)


def test_rsu_publications_retained_with_remaining_validity():
    """Retained, expiry = remaining validity (ceil); no position -> the site's tile;
    nothing once expired; a moved event clears its old topic first."""
    pub = RsuPublisher('v2x', 'rsu_1', 18, (37.0, 127.0))
    [p] = pub.alert(_alert(), b'dg', 130 * S + 1)
    assert p.retain and p.payload == b'dg' and p.expiry_interval_s(130 * S + 1) == 30
    assert topics.parse('v2x', p.topic)[2] == qk.quadkey_of(37.12345, 127.12345, 18)
    [q] = pub.alert(_alert(sequence=8, latitude=math.nan, longitude=math.nan), b'x', 130 * S)
    assert topics.parse('v2x', q.topic)[2] == qk.quadkey_of(37.0, 127.0, 18)
    assert pub.alert(_alert(), b'dg', 160 * S) == []
    [again] = pub.alert(_alert(stamp_ns=101 * S), b'dg1', 131 * S)  # update in place
    assert again.topic == p.topic and again.payload == b'dg1'
    clear, moved = pub.alert(_alert(latitude=37.2, stamp_ns=102 * S), b'dg2', 131 * S)
    assert (clear.topic, clear.payload) == (p.topic, b'') and moved.topic != p.topic
    assert topics.parse('v2x', moved.topic)[2] == qk.quadkey_of(37.2, 127.12345, 18)
    hb = pub.heartbeat(b'hb', 10 * S, 10.0, 3)
    site = qk.quadkey_of(37.0, 127.0, 18)
    assert hb.retain and hb.expiry_interval_s(10 * S) == 30
    assert hb.topic == 'v2x/status/rsu_1/' + '/'.join(site)
    assert pub.will() == Publication(hb.topic, OFFLINE, True, None)


def test_offline_queue_latest_per_topic_live_only_bounded():
    """Newer replaces older per topic; in-flight ones taken back never replace newer ones;
    drain keeps only live ones, oldest first; overflow drops the soonest-expiring, counted."""
    q = OfflineQueue(limit=3)
    q.put(Publication('a', b'1', expires_ns=50 * S))
    q.put(Publication('b', b'1', expires_ns=200 * S))
    q.put(Publication('a', b'2', expires_ns=50 * S))
    q.put_older(Publication('b', b'0', expires_ns=200 * S))
    q.put_older(Publication('c', b'0', expires_ns=300 * S))
    assert [(p.topic, p.payload) for p in q.drain(10 * S)] == [('c', b'0'), ('b', b'1'),
                                                               ('a', b'2')]
    q.put(Publication('a', b'1', expires_ns=50 * S))
    q.put(Publication('b', b'1', expires_ns=200 * S))
    assert [p.topic for p in q.drain(100 * S)] == ['b']
    for name in 'wxyz':
        q.put(Publication(name, b'', expires_ns=ord(name) * S))
    assert len(q) == 3 and q.dropped == 1 and 'w' not in {p.topic for p in q.drain(0)}


@pytest.mark.parametrize('url,param', [
    ('http://broker', 'broker_url'),                 # not MQTT
    ('mqtts://user:pw@broker:8883', 'broker_url'),   # credentials in the URL (argv!)
    ('mqtts://broker:99999', 'broker_url'),          # port out of range
    ('mqtts:///nohost', 'broker_url'),               # no host
])
def test_bad_urls_name_the_parameter(url, param):
    """A bad broker_url is refused naming broker_url."""
    with pytest.raises(ParameterError) as err:
        make_config(url, '', '', 'v2x', 16)
    assert err.value.name == param


def test_config_parses_credentials_and_warns(tmp_path):
    """Credentials come from the file; plain mqtt is warned about; a credentials file
    group/others may read is refused like a key file, saying the chmod; bad prefix /
    zoom / CA name their parameter; the password never shows in repr."""
    cred = tmp_path / 'cred'
    cred.write_text('# station\nusername=rsu_1\npassword=s3cret\n')
    for mode in (0o644, 0o640, 0o604, 0o660):
        cred.chmod(mode)
        with pytest.raises(ParameterError, match=f'chmod 600 {cred}') as err:
            make_config('mqtt://127.0.0.1', str(cred), '', 'v2x', 16)
        assert err.value.name == 'broker_credentials_file' and 's3cret' not in str(err.value)
    cred.chmod(0o600)
    cfg = make_config('mqtt://127.0.0.1', str(cred), '', 'v2x', 16)
    assert (cfg.host, cfg.port, cfg.tls, cfg.username) == ('127.0.0.1', 1883, False, 'rsu_1')
    assert 's3cret' not in repr(cfg) and len(cfg.warnings) == 1
    assert make_config('', '', '', 'v2x', 16) is None
    for args, name in [(('mqtts://b', '', '', 'v2x/#', 16), 'broker_topic_prefix'),
                       (('mqtts://b', '', '', 'v2x', 0), 'broker_zoom'),
                       (('mqtts://b', '', str(tmp_path / 'no.pem'), 'v2x', 16),
                        'broker_ca_file'),
                       (('mqtts://b', str(tmp_path / 'none'), '', 'v2x', 16),
                        'broker_credentials_file')]:
        with pytest.raises(ParameterError) as err:
            make_config(*args)
        assert err.value.name == name
    cred.write_text('user rsu_1\n')
    with pytest.raises(ParameterError, match='username='):
        make_config('mqtts://b', str(cred), '', 'v2x', 16)


def test_protocol_md_topic_example():
    """The topic example of docs/protocol.md ("Federation over MQTT") is what the code makes."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[3] / 'docs' / 'protocol.md').read_text()
    key = qk.quadkey_of(37.12345, 127.12345, 18)
    for text in (topics.alert_topic('v2x', 'rsu_server_01', key, 'rsu_server_01', 1),
                 topics.tile_filter('v2x', key[:14]),
                 topics.event_level('det/cam#1', 7)):
        assert text in doc, text
