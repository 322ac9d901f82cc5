"""The evidence archive as the console lists it: clips read from their sidecars (file I/O).

The archive is event_clipper's directory of accident_<T0>_<clip_id>.mp4 + .json
(docs/recorder.md). Sidecars are parsed once per change of their modification time. A
clip's files are served only by name from the listing, never by a path from the request.
Each clip's signature status (verified / bad / unsigned: its sidecar against its .sig and
the archive's public key) and legal hold (from the evidence log) are listed too.
"""

import hashlib
import json
import math
import os

from v2x_common.clip_archive import scan_archive
from v2x_evidence import evidence
from v2x_evidence import log as evidence_log
from v2x_evidence.export import ExportRefused, export
from v2x_evidence.hold import HoldRefused, set_hold

READ_CHUNK = 1 << 20


def _num(value) -> float | None:
    """A finite number from a sidecar, else None (JSON allows NaN in; the API never)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
    return float(value) if ok else None


def _text(value) -> str:
    return value if isinstance(value, str) else ''


def _entry(stem: str, files: tuple[str, ...], sidecar: dict | None, problem: str,
           signature: str = evidence_log.SIGNATURE_UNSIGNED, hold: dict | None = None) -> dict:
    paths = {os.path.splitext(f)[1]: f for f in files}
    side = sidecar or {}
    window = side.get('window') or {}
    video, size = paths.get('.mp4'), 0
    if video:
        try:
            size = os.path.getsize(video)
        except OSError:  # deleted by retention since the scan
            video = None
    if not isinstance(window, dict):
        window = {}
    gaps = side.get('gaps')
    return {
        'stem': stem, 'clip_id': _text(side.get('clip_id')), 't0': _num(side.get('t0')),
        'window_start': _num(window.get('start')), 'window_end': _num(window.get('end')),
        'pre_s': _num(side.get('pre_s')), 'post_s': _num(side.get('post_s')),
        'duration_s': _num(side.get('duration_s')),
        'expected_duration_s': _num(side.get('expected_duration_s')),
        'gaps': [g for g in gaps if isinstance(g, str)] if isinstance(gaps, list) else [],
        'sha256': _text(side.get('sha256')), 'origin': _text(side.get('origin')),
        'error': _text(side.get('error')) or problem,
        'video': os.path.basename(video) if video else None,
        'sidecar': os.path.basename(paths['.json']) if '.json' in paths else None, 'size': size,
        'signature': signature, 'held': hold is not None,
        'hold_by': _text((hold or {}).get('who')), 'hold_why': _text((hold or {}).get('why')),
    }


class ArchiveReader:
    """Lists the clips of one directory, newest T0 first, caching parsed sidecars."""

    def __init__(self, directory: str):
        self.directory = directory
        self._cache: dict[str, tuple[float, dict | None, str, str]] = {}
        self._log = evidence_log.EvidenceLog(directory) if directory else None
        self._key: tuple[float, object] = (-1.0, None)  # (public key mtime, verify)

    def _verify_fn(self):
        """verify(data, sig) of the archive's public key (None without one)."""
        path = os.path.join(self.directory, evidence.PUBLIC_KEY_FILE)
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        if self._key[0] != mtime:
            try:
                verify = evidence_log.load_public_key(path)[0]
            except evidence_log.KeyConfigError:
                verify = None
            self._key = (mtime, verify)
        return self._key[1]

    def read(self) -> list[dict]:
        """Every clip in the directory (an unreadable sidecar is listed with the problem)."""
        if not self.directory:
            return []
        out = []
        seen = set()
        verify = self._verify_fn()
        clips = self._log.refresh().clips
        for clip in scan_archive(self.directory):
            seen.add(clip.stem)
            cached = self._cache.get(clip.stem)
            if cached is None or cached[0] != clip.mtime:
                status = evidence_log.signature_status(self.directory, clip.stem, verify)
                cached = (clip.mtime, *self._load(clip.files), status)
                self._cache[clip.stem] = cached
            state = clips.get(clip.stem)
            out.append(_entry(clip.stem, clip.files, cached[1], cached[2], cached[3],
                              state.hold if state is not None else None))
        for stem in set(self._cache) - seen:
            del self._cache[stem]
        return sorted(out, key=lambda e: (-(e['t0'] or 0.0), e['stem']))

    @staticmethod
    def _load(files: tuple[str, ...]) -> tuple[dict | None, str]:
        for path in files:
            if path.endswith('.json'):
                try:
                    with open(path, encoding='utf-8') as f:
                        data = json.load(f)
                except (OSError, ValueError) as exc:
                    return None, f'sidecar unreadable: {exc}'
                if not isinstance(data, dict):
                    return None, 'sidecar is not a JSON object'
                return data, ''
        return None, 'no sidecar'

    def file_path(self, name: str) -> str | None:
        """The path of an archive file named exactly as listed (.mp4 or .json), else None."""
        stem, ext = os.path.splitext(name)
        if ext not in ('.mp4', '.json') or os.path.basename(name) != name:
            return None
        for clip in scan_archive(self.directory) if self.directory else []:
            if clip.stem == stem:
                for path in clip.files:
                    if os.path.basename(path) == name:
                        return path
        return None

    def verify(self, stem: str) -> dict | None:
        """Hash the clip's video and compare with its sidecar; None when no such clip."""
        entry = next((e for e in self.read() if e['stem'] == stem), None)
        if entry is None:
            return None
        result = {'stem': stem, 'expected': entry['sha256'], 'actual': '', 'ok': False,
                  'error': ''}
        path = self.file_path(entry['video']) if entry['video'] else None
        if path is None:
            result['error'] = 'no video file'
            return result
        digest = hashlib.sha256()
        try:
            with open(path, 'rb') as f:
                while chunk := f.read(READ_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            result['error'] = str(exc)
            return result
        result['actual'] = digest.hexdigest()
        result['ok'] = bool(entry['sha256']) and result['actual'] == entry['sha256']
        if not result['ok']:
            result['error'] = 'sha256 differs from the sidecar' if entry['sha256'] else \
                'the sidecar has no sha256'
        return result

    def hold(self, stem: str, held: bool, who: str, why: str) -> dict:
        """Hold (or release) a listed clip: a record of the evidence log, signed with the
        key event_clipper names in the archive. Raises HoldRefused (not listed, not held),
        KeyConfigError (the key cannot be used) or OSError."""
        if not any(c.stem == stem for c in scan_archive(self.directory)):
            raise HoldRefused(f'no clip {stem!r} in the archive')
        log = evidence_log.open_archive_log(self.directory)
        record, message = set_hold(log, stem, held, who, why)
        return {'stem': stem, 'held': held, 'message': message,
                'entry': record['index'] if record else None}

    def export(self, stem: str, out_dir: str) -> str:
        """Write the clip's evidence export (v2x_export_evidence) into out_dir; its path.
        Raises ExportRefused (not listed, not in the log) or OSError."""
        if not any(c.stem == stem for c in scan_archive(self.directory)):
            raise ExportRefused(f'no clip {stem!r} in the archive')
        path = os.path.join(out_dir, f'{stem}.evidence.tar')
        export(self.directory, stem, path)
        return path
