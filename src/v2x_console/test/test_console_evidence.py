"""The console's evidence: each clip's signature status, a legal hold authenticated like
inject (who and why in the signed evidence log), and the export download that
v2x_verify_evidence accepts. HTTP without ROS; a real Ed25519 key from v2x_keygen."""

import base64
import hashlib
import io
import json

from fastapi.testclient import TestClient
import pytest

from v2x_bridge import v2x_keygen
from v2x_console.actions import Credentials
from v2x_console.archive import ArchiveReader
from v2x_console.core import ConsoleState
from v2x_console.http_app import Hub, create_app
from v2x_evidence import log as evidence_log
from v2x_recorder import v2x_verify_evidence
from v2x_recorder.cutter import sidecar_bytes

TOKEN = b'evidence-test-token-0123456789'
NOW = 1_800_000_000.0
BASIC = 'Basic ' + base64.b64encode(b'officer:password-123').decode()


def _clip(archive, log, name, sign=True):
    """A clip's video and sidecar, sealed in the evidence log (or left unsigned)."""
    video = archive / f'accident_1800000000_{name}.mp4'
    video.write_bytes(name.encode() * 500)
    sidecar = {'clip_id': name, 't0': NOW, 'sha256': hashlib.sha256(
        video.read_bytes()).hexdigest(), 'duration_s': 3.0, 'gaps': [], 'error': '',
        'path': str(video), 'event': {'source_id': 'rsu', 'origin': '', 'sequence': 1,
                                      'kind': 'fire', 't0': NOW}}
    data = sidecar_bytes(sidecar)
    (archive / f'accident_1800000000_{name}.json').write_bytes(data)
    if sign:
        log.record_clip(f'accident_1800000000_{name}', data, sidecar)


@pytest.fixture
def console(tmp_path):
    archive = tmp_path / 'archive'
    archive.mkdir()
    assert v2x_keygen.main(['--station-id', 'evidence', '--out-dir', str(tmp_path)],
                           env={}) == 0
    key = str(tmp_path / 'evidence.key')
    log = evidence_log.EvidenceLog(str(archive), evidence_log.load_evidence_key(key), 'rsu')
    evidence_log.write_signer_file(str(archive), key, 'rsu')  # as event_clipper does
    for name, sign in (('good', True), ('edited', True), ('plain', False)):
        _clip(archive, log, name, sign)
    edited = archive / 'accident_1800000000_edited.json'
    edited.write_text(edited.read_text().replace('"fire"', '"blockage"'))
    state = ConsoleState()
    client = TestClient(create_app(lambda: state.snapshot(NOW), Hub(
        lambda: state.snapshot(NOW)), ArchiveReader(str(archive)), None,
        Credentials(TOKEN, ((b'officer', b'password-123'),))),
        base_url='http://127.0.0.1:8090')
    return client, archive, tmp_path


def test_listing_shows_each_clips_signature_status(console):
    """verified for a sealed clip, bad for an edited sidecar, unsigned without a signature."""
    client, _, _ = console
    status = {c['clip_id']: c['signature'] for c in client.get('/api/archive').json()}
    assert status == {'good': 'verified', 'edited': 'bad', 'plain': 'unsigned'}


def test_hold_is_authenticated_and_logged_with_who_and_why(console):
    """A hold needs the actions' credentials and header; it is a signed log record naming
    the basic-auth user (or 'token') and the reason; the listing shows it; release too."""
    client, archive, _ = console
    url = '/api/archive/accident_1800000000_good/hold'
    assert client.post(url, json={'reason': 'x'}).status_code == 401
    assert client.post(url, json={'reason': 'x'},
                       headers={'Authorization': BASIC}).status_code == 403  # no CSRF header
    bad = client.post(url, json={}, headers={'Authorization': BASIC, 'X-V2X-Console': '1'})
    assert bad.status_code == 422 and bad.json()['field'] == 'reason'
    held = client.post(url, json={'reason': 'court order 17'},
                       headers={'Authorization': BASIC, 'X-V2X-Console': '1'})
    assert held.status_code == 200 and held.json()['held'] is True, held.text
    (clip,) = [c for c in client.get('/api/archive').json() if c['clip_id'] == 'good']
    assert (clip['held'], clip['hold_by'], clip['hold_why']) == (True, 'officer',
                                                                'court order 17')
    auth = {'Authorization': f'Bearer {TOKEN.decode()}', 'X-V2X-Console': '1'}
    assert client.post(url, json={'reason': 'closed', 'release': True},
                       headers=auth).status_code == 200
    missing = client.post('/api/archive/accident_9_none/hold', json={'reason': 'x'},
                          headers=auth)
    assert missing.status_code == 409
    state = evidence_log.EvidenceLog(str(archive)).refresh()
    assert state.held == set()
    out = io.StringIO()  # the hold records are signed with the station's key
    assert v2x_verify_evidence.main([str(archive / 'accident_1800000000_good.mp4')],
                                    out=out) == 0, out.getvalue()


def test_export_download_verifies_offline(console):
    """The export download is a tar v2x_verify_evidence accepts; an unsigned clip has none."""
    client, _, tmp_path = console
    response = client.get('/api/archive/accident_1800000000_good/export')
    assert response.status_code == 200
    assert 'accident_1800000000_good.evidence.tar' in response.headers['content-disposition']
    tar = tmp_path / 'download.tar'
    tar.write_bytes(response.content)
    out = io.StringIO()
    assert v2x_verify_evidence.main([str(tar), '--public-key',
                                     str(tmp_path / 'archive' / 'evidence_public_key.pem')],
                                    out=out) == 0, out.getvalue()
    refused = client.get('/api/archive/accident_1800000000_plain/export')
    assert refused.status_code == 404 and 'not in the evidence log' in refused.json()['detail']
    assert json.loads(client.get('/api/archive').text)  # the listing still answers
