"""Signed and chained evidence: real clips cut from real ffmpeg segments, a real Ed25519
evidence key (v2x_keygen), and v2x_verify_evidence / v2x_export_evidence / v2x_hold_evidence
run in-process on copies of one archive, each copy changed the way a forger would."""

import io
import json
import os
import shutil
import tarfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest

from v2x_evidence import evidence
from v2x_evidence import log as evidence_log
from v2x_recorder import (
    archive,
    v2x_export_evidence,
    v2x_hold_evidence,
    v2x_verify_evidence,
)
from v2x_recorder.cutter import cut_clip
from v2x_recorder.evidence_cli import ExitCode

START = 1_700_000_000


@pytest.fixture(scope='module')
def signed(tools, footage, tmp_path_factory, make_key, alert_request):
    """An archive: three signed clips, the first held, the second deleted by retention."""
    root = tmp_path_factory.mktemp('evidence')
    rec = os.path.dirname(footage[0])  # three 2 s segments from START
    key = make_key(root / 'keys')
    arch = str(root / 'archive')
    log = evidence_log.EvidenceLog(arch, evidence_log.load_evidence_key(key), 'rsu_test')
    results = [cut_clip(alert_request(i + 1, START + 2 + i), rec, arch, tools, log=log)
               for i in range(3)]
    stems = [os.path.basename(r.sidecar_path)[:-5] for r in results]
    v2x_hold_evidence.set_hold(log, stems[0], True, 'officer_k', 'court order 17')
    (gone,) = [c for c in archive.scan_archive(arch) if c.stem == stems[1]]
    assert archive.delete_clip(gone) == []
    log.append(evidence.DELETE, stem=stems[1], reason='count', what='evidence of an alert')
    pem = str(root / 'station.pem')
    shutil.copy(os.path.join(arch, evidence.PUBLIC_KEY_FILE), pem)
    return {'root': root, 'archive': arch, 'stems': stems, 'pem': pem, 'log': log,
            'head': os.path.join(arch, evidence.HEAD_FILE)}


def verify(*argv):
    out = io.StringIO()
    status = v2x_verify_evidence.main([str(a) for a in argv], out=out)
    return status, out.getvalue()


def test_intact_archive_holds_and_prints_its_head(signed):
    """An untouched archive verifies (exit 0) with the head index, held and deleted clips."""
    status, text = verify(signed['archive'], '--public-key', signed['pem'])
    assert status == ExitCode.OK, text
    state = signed['log'].refresh()
    assert f'head: {state.next_index - 1} {state.last_hash}' in text
    assert f'ok: {signed["stems"][0]} (held)' in text
    assert 'all holds: 2 clip(s) verified, 1 deleted by retention (logged), 1 held' in text
    sidecar = json.loads(open(os.path.join(signed['archive'],
                                           signed['stems'][2] + '.json')).read())
    assert sidecar['event'] == {'source_id': 'rsu_test', 'origin': '00000000000000aa',
                                'sequence': 3, 'kind': 'collision', 't0': START + 4.0}
    assert sidecar['station'] == 'rsu_test' and sidecar['window']['start'] == START + 3.0


def _flip_byte(path, offset=-100):
    with open(path, 'r+b') as f:
        f.seek(offset, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def _edit_sidecar(path):
    data = json.loads(open(path).read())
    data['gaps'] = []
    data['window']['start'] += 30.0  # a forger hides the footage before the event
    with open(path, 'w') as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + '\n')


def _lines(arch):
    with open(os.path.join(arch, evidence.LOG_FILE), 'rb') as f:
        return f.read().splitlines(keepends=True)


def _write_lines(arch, lines):
    with open(os.path.join(arch, evidence.LOG_FILE), 'wb') as f:
        f.writelines(lines)


def _forge_signature(path):
    other = Ed25519PrivateKey.generate()  # not the station's key
    with open(path[:-4] + '.json', 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(other.sign(data))


def _resign_everything(arch):
    """A forger with a key of their own re-signs the log, the head and the public key."""
    other = Ed25519PrivateKey.generate()
    lines = []
    for line in _lines(arch):
        body = line.split(b'\t')[0]
        lines.append(body + b'\t' + __import__('base64').b64encode(other.sign(body)) + b'\n')
    _write_lines(arch, lines)
    with open(os.path.join(arch, evidence.PUBLIC_KEY_FILE), 'wb') as f:
        f.write(other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


# (how the archive is changed, the exit status, what the verifier must print)
CASES = [
    # a byte of the video changed
    (lambda a, s: _flip_byte(os.path.join(a, s[2] + '.mp4')), ExitCode.EVIDENCE_INVALID,
     'clip changed: {2}'),
    # the sidecar edited (its window moved, gaps removed)
    (lambda a, s: _edit_sidecar(os.path.join(a, s[2] + '.json')), ExitCode.EVIDENCE_INVALID,
     'sidecar changed: {2}'),
    # the sidecar's signature replaced by one of another key
    (lambda a, s: _forge_signature(os.path.join(a, s[2] + '.sig')),
     ExitCode.EVIDENCE_INVALID, 'signature bad: {2}'),
    # the log entry of the held clip's hold removed (entries after it renumber nothing)
    (lambda a, s: _write_lines(a, [ln for i, ln in enumerate(_lines(a)) if i != 4]),
     ExitCode.EVIDENCE_INVALID, 'entry missing: entry 4'),
    # two entries swapped
    (lambda a, s: _write_lines(a, (lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:])(_lines(a))),
     ExitCode.EVIDENCE_INVALID, 'chain broken at 2'),
    # one entry's content changed (its signature no longer matches, the next one's prev)
    (lambda a, s: _write_lines(a, [ln.replace(b'"reason":"count"', b'"reason":"court"')
                                   for ln in _lines(a)]),
     ExitCode.EVIDENCE_INVALID, 'signature bad: entry 5'),
    # a clip deleted without a log record
    (lambda a, s: [os.unlink(os.path.join(a, s[2] + e)) for e in ('.mp4', '.json', '.sig')],
     ExitCode.EVIDENCE_INVALID, 'clip missing: {2}'),
    # everything re-signed with another key: the station's public key refuses it
    (lambda a, s: _resign_everything(a), ExitCode.EVIDENCE_INVALID, 'signature bad: entry 0'),
    # a clip the log never recorded (copied in by hand)
    (lambda a, s: [shutil.copy(os.path.join(a, s[2] + e), os.path.join(a, 'accident_1_x' + e))
                   for e in ('.mp4', '.json')],
     ExitCode.EVIDENCE_UNSIGNED, 'not in the evidence log: accident_1_x'),
]


@pytest.mark.parametrize('change, status, says', CASES)
def test_each_change_is_detected_and_named(signed, tmp_path, change, status, says):
    """Each way of changing the archive is found, named, and exits with its code."""
    arch = str(tmp_path / 'archive')
    shutil.copytree(signed['archive'], arch)
    change(arch, signed['stems'])
    got, text = verify(arch, '--public-key', signed['pem'])
    assert says.format(*signed['stems']) in text, text
    assert got == status, text


def test_log_cut_short_is_found_against_an_earlier_head(signed, tmp_path):
    """A log cut back to an older state (its older signed head put back) still fails against
    a head the verifier was given, whether as INDEX:HASH or as a saved head file."""
    saved = tmp_path / 'head-before'
    shutil.copy(signed['head'], saved)
    status, text = verify(signed['archive'], '--public-key', signed['pem'], '--head', saved)
    assert status == ExitCode.OK, text
    head_line = text.splitlines()[-2]
    index, digest = head_line.split()[1:]
    arch = str(tmp_path / 'archive')
    shutil.copytree(signed['archive'], arch)
    lines = _lines(arch)
    _write_lines(arch, lines[:-2])  # the last two entries cut off
    # the head as it was two entries earlier, validly signed then: written again
    log = evidence_log.EvidenceLog(str(tmp_path / 'scratch'), signed['log'].signer)
    body, record, _ = evidence.parse_line(lines[-3].rstrip(b'\n'))
    head = evidence.head_record(record['index'], evidence.sha256_hex(body), record['time'],
                                signed['log'].key_id)
    with open(os.path.join(arch, evidence.HEAD_FILE), 'wb') as f:
        f.write(evidence.signed_line(head, log.sign)[0])
    for given in (f'{index}:{digest}', saved):
        status, text = verify(arch, '--public-key', signed['pem'], '--head', given)
        assert status == ExitCode.EVIDENCE_INVALID
        assert f'log cut short: the given head {index} is entry {index}, the log ends at ' \
               f'{int(index) - 2}' in text


def test_one_clip_and_its_export_verify_offline(signed, tmp_path):
    """A single clip verifies in its archive; its export tar verifies alone, and a changed
    clip inside an export is found."""
    stem = signed['stems'][2]
    status, text = verify(os.path.join(signed['archive'], stem + '.mp4'),
                          '--public-key', signed['pem'])
    assert status == ExitCode.OK and f'ok: {stem}' in text and signed['stems'][0] not in text
    out = tmp_path / 'e.tar'
    assert v2x_export_evidence.main([os.path.join(signed['archive'], stem + '.mp4'),
                                     '--out', str(out)], out=io.StringIO()) == ExitCode.OK
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        readme = tar.extractfile('README.txt').read().decode()
    assert names == {stem + '.mp4', stem + '.json', stem + '.sig', 'evidence.log',
                     'evidence.head', 'evidence_public_key.pem', 'README.txt'}
    assert f'openssl pkeyutl -verify -pubin -inkey evidence_public_key.pem -rawin -in ' \
           f'{stem}.json -sigfile {stem}.sig' in readme
    status, text = verify(out, '--public-key', signed['pem'])
    assert status == ExitCode.OK and f'ok: {stem}' in text, text
    # the same export with the video changed
    bad = tmp_path / 'bad.tar'
    with tarfile.open(out) as src, tarfile.open(bad, 'w') as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.endswith('.mp4'):
                data = data[:-10] + bytes(10)
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    status, text = verify(bad, '--public-key', signed['pem'])
    assert status == ExitCode.EVIDENCE_INVALID and f'clip changed: {stem}' in text


def test_hold_cli_records_who_and_why_and_refuses_unknown_clips(signed, tmp_path, make_key):
    """v2x_hold_evidence holds and releases with the unix user and the reason in the log;
    a release of an unheld clip and a hold of a missing clip are refused (exit 1)."""
    arch = str(tmp_path / 'archive')
    shutil.copytree(signed['archive'], arch)
    key = make_key(tmp_path / 'k', 'other')  # the CLI signs with the key it is given
    stem = signed['stems'][2]
    common = ['--archive-dir', arch, '--evidence-key-file', key]
    out = io.StringIO()
    assert v2x_hold_evidence.main([stem, '--reason', 'insurer claim 9', *common],
                                  out=out) == 0
    assert out.getvalue().startswith(f'held {stem} (entry ')
    state = evidence_log.EvidenceLog(arch).refresh()
    hold = state.clips[stem].hold
    assert hold['who'] == v2x_hold_evidence.unix_user() and hold['why'] == 'insurer claim 9'
    assert state.held == {stem, signed['stems'][0]}
    assert v2x_hold_evidence.main([stem, '--release', '--reason', 'claim closed', *common],
                                  out=io.StringIO()) == 0
    assert v2x_hold_evidence.main([stem, '--release', '--reason', 'again', *common],
                                  out=io.StringIO()) == ExitCode.ERROR
    assert v2x_hold_evidence.main(['accident_5_none', '--reason', 'x', *common],
                                  out=io.StringIO()) == ExitCode.ERROR
    assert evidence_log.EvidenceLog(arch).refresh().held == {signed['stems'][0]}


def test_evidence_key_readable_by_others_is_refused(tmp_path, make_key):
    """The evidence key goes through the alert keys' loader: mode 0644 is refused with the
    chmod that fixes it."""
    key = make_key(tmp_path)
    os.chmod(key, 0o644)
    with pytest.raises(evidence_log.KeyConfigError, match=f'chmod 600 {key}'):
        evidence_log.load_evidence_key(key)


def test_event_key_separates_origins():
    """A station that lost its state (new origin) reuses sequences: its events are new."""
    a = evidence.event_key({'source_id': 'rsu', 'origin': '01', 'sequence': 7})
    b = evidence.event_key({'source_id': 'rsu', 'origin': '02', 'sequence': 7})
    assert a != b and a == 'rsu|01|7'
    assert evidence.event_key({'source_id': '', 'origin': '', 'sequence': 0}) == ''


def test_retention_of_an_unsigned_clip_is_logged_and_holds(signed, tmp_path):
    """A clip from before the evidence key (not in the log) that retention deleted with a
    log record is counted as deleted, not as missing."""
    arch = str(tmp_path / 'archive')
    shutil.copytree(signed['archive'], arch)
    log = evidence_log.EvidenceLog(arch, signed['log'].signer, 'rsu_test')
    log.append(evidence.DELETE, stem='accident_5_legacy', reason='age', what='cli clip')
    status, text = verify(arch, '--public-key', signed['pem'])
    assert status == ExitCode.OK, text
    assert '2 deleted by retention (logged)' in text


def test_signature_status_of_a_sidecar(signed, tmp_path):
    """The console's cheap status: verified, bad once the sidecar changed, unsigned without
    a signature file or a key."""
    arch = str(tmp_path / 'archive')
    shutil.copytree(signed['archive'], arch)
    verify_fn, _ = evidence_log.load_public_key(signed['pem'])
    stem = signed['stems'][2]
    assert evidence_log.signature_status(arch, stem, verify_fn) == 'verified'
    assert evidence_log.signature_status(arch, stem, None) == 'unsigned'
    _edit_sidecar(os.path.join(arch, stem + '.json'))
    assert evidence_log.signature_status(arch, stem, verify_fn) == 'bad'
    os.unlink(os.path.join(arch, stem + '.sig'))
    assert evidence_log.signature_status(arch, stem, verify_fn) == 'unsigned'
