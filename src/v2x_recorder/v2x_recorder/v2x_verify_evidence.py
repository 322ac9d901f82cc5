"""v2x_verify_evidence: check clips, sidecars and the evidence log offline, with the public key.

    v2x_verify_evidence ARCHIVE_DIR | CLIP | EXPORT.tar [--public-key PEM] [--head I:HASH]...

ARCHIVE_DIR: every clip and the whole log. CLIP (accident_....mp4 / .json / .sig, or its
stem) in an archive: the whole log, that clip's files. EXPORT.tar (v2x_export_evidence):
the clip, its signature and the log excerpt from its record to the signed head. Prints the
head index and hash, one line per thing that does not hold (``clip changed: STEM``,
``sidecar changed: STEM``, ``signature bad: STEM``, ``entry missing: entry N``, ``chain
broken at N``, ``log cut short: ...``, ``clip missing: STEM``, ``unsigned: ...``,
``not in the evidence log: STEM``) and a summary.

Exit status (the ExitCode table below; docs/recorder.md): 0 all holds, 1 cannot read the
input, 2 usage, 4 something was changed, removed or cut short, 5 nothing was changed but
something is unsigned or not in the log (it cannot be vouched for).
"""

import argparse
from dataclasses import dataclass, field
import os
import sys
import tarfile
import tempfile
from typing import TextIO

from v2x_common.files import sha256_file
from v2x_evidence import evidence
from v2x_evidence.evidence import HEAD_FILE, LOG_FILE, PUBLIC_KEY_FILE, SIG_SUFFIX, Finding
from v2x_evidence.log import KeyConfigError, load_public_key
from v2x_recorder.archive import scan_archive
from v2x_recorder.evidence_cli import ExitCode, clip_stem, run


@dataclass
class Report:
    """What a verification found."""

    head_index: int = -1
    head_hash: str = ''
    key_id: str = ''
    checked: list[str] = field(default_factory=list)      # clips that hold
    deleted: list[str] = field(default_factory=list)      # deleted by retention (logged)
    held: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        if any(f.is_tampering for f in self.findings):
            return ExitCode.EVIDENCE_INVALID
        return ExitCode.EVIDENCE_UNSIGNED if self.findings else ExitCode.OK


def _read(path: str) -> bytes | None:
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return None


def _log_lines(directory: str) -> list[bytes]:
    data = _read(os.path.join(directory, LOG_FILE))
    if data is None:
        return []
    lines = data.split(b'\n')
    if lines and lines[-1] == b'':
        lines.pop()
    return lines


def verify_directory(directory: str, verify, given_heads=(), stems: set[str] | None = None,
                     excerpt: bool = False) -> Report:
    """Check the log of an archive directory, then its clips (or only stems).

    excerpt: the log is an export's excerpt (it starts mid-log: the first record's prev
    is not checked).
    """
    lines = _log_lines(directory)
    report = Report()
    first_index = 0
    if excerpt and lines:
        try:
            first_index = int(evidence.parse_line(lines[0])[1].get('index', 0))
        except evidence.BadRecord:
            first_index = 0
    state, found, hashes = evidence.check_chain(
        lines, verify, first_index, None if excerpt else evidence.GENESIS_PREV)
    report.findings += found
    head_line = _read(os.path.join(directory, HEAD_FILE))
    if head_line is None and lines:
        report.findings.append(Finding(evidence.UNSIGNED, 'the head', f'no {HEAD_FILE}'))
    index, head_found = evidence.check_head(head_line, state, hashes, first_index, verify,
                                            given_heads)
    report.findings += head_found
    report.head_index = index
    report.head_hash = hashes[-1] if hashes else ''
    on_disk = {c.stem for c in scan_archive(directory)}
    wanted = stems if stems is not None else set(state.clips) | on_disk
    for stem in sorted(wanted):
        clip = state.clips.get(stem)
        if clip is not None and clip.entry is None and clip.deleted is not None:
            report.deleted.append(stem)  # an unsigned clip retention deleted (logged)
            continue
        if clip is None or clip.entry is None:
            if stem in on_disk:
                report.findings.append(Finding(evidence.NOT_IN_LOG, stem))
            else:
                report.findings.append(Finding(evidence.CLIP_MISSING, stem, 'no such clip'))
            continue
        if clip.deleted is not None:
            report.deleted.append(stem)
            if stem in on_disk:  # deleted in the log, yet there: say so, do not fail
                report.checked.append(stem)
            continue
        base = os.path.join(directory, stem)
        video = clip.entry.get('video') or ''
        video_path = os.path.join(directory, video) if video else ''
        sha = sha256_file(video_path) if video and os.path.exists(video_path) else None
        problems = evidence.check_clip(clip, _read(base + '.json'), _read(base + SIG_SUFFIX),
                                       sha, verify)
        report.findings += problems
        if clip.held:
            report.held.append(stem)
        if not problems:
            report.checked.append(stem)
    return report


def _safe_extract(tar_path: str, into: str) -> None:
    """Extract the regular files of an export (plain names only) into a directory."""
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            if not member.isfile() or name != member.name or name in ('', '.', '..'):
                raise ValueError(f'{tar_path}: unexpected member {member.name!r}')
            source = tar.extractfile(member)
            with open(os.path.join(into, name), 'wb') as out:
                out.write(source.read())


def parse_head(text: str) -> tuple[int, str]:
    """'INDEX:HASH', or a head file (evidence.head) -> (index, hash)."""
    if os.path.isfile(text):
        data = _read(text) or b''
        try:
            _, record, _ = evidence.parse_line(data.rstrip(b'\n'))
            return int(record['index']), str(record['hash'])
        except (evidence.BadRecord, KeyError, ValueError, TypeError):
            raise argparse.ArgumentTypeError(f'{text} is no head file') from None
    index, sep, digest = text.partition(':')
    if not sep or not index.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError(f'{text!r}: give INDEX:SHA256 or a head file')
    return int(index), digest.lower()


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_verify_evidence',
                                description=__doc__.split('\n')[0])
    p.add_argument('path', help='archive directory, a clip in one, or an export .tar')
    p.add_argument('--public-key', default='',
                   help="the station's evidence public key (PEM); default: the copy in the "
                   'archive or export (then compare its key id with the published one)')
    p.add_argument('--head', action='append', type=parse_head, default=[],
                   metavar='INDEX:HASH|FILE',
                   help='an earlier head (printed by an earlier run, or a saved '
                   'evidence.head): the log must still hold it')
    p.add_argument('--quiet', action='store_true', help='print findings and the summary only')
    return p


def main(argv=None, out: TextIO | None = None) -> int:
    """Verify; see --help."""
    return run(build_parser(), argv, out, _command)


def _command(args, out: TextIO) -> int:
    path = args.path
    if not os.path.exists(path) and not os.path.exists(path + '.json'):
        print(f'v2x_verify_evidence: {path}: no such file or directory', file=sys.stderr)
        return ExitCode.ERROR
    with tempfile.TemporaryDirectory(prefix='v2x-verify-') as tmp:
        excerpt, stems = False, None
        if os.path.isfile(path) and tarfile.is_tarfile(path):
            try:
                _safe_extract(path, tmp)
            except (ValueError, OSError, tarfile.TarError) as exc:
                print(f'v2x_verify_evidence: {exc}', file=sys.stderr)
                return ExitCode.ERROR
            directory, excerpt = tmp, True
            stems = {c.stem for c in scan_archive(tmp)}
        elif os.path.isdir(path):
            directory = path
        else:
            directory, stem = clip_stem(path)
            stems = {stem}
        key_path = args.public_key or os.path.join(directory, PUBLIC_KEY_FILE)
        try:
            verify, key_id = load_public_key(key_path)
        except KeyConfigError as exc:
            if args.public_key:
                print(f'v2x_verify_evidence: {exc}', file=sys.stderr)
                return ExitCode.ERROR
            verify, key_id = None, ''
        report = verify_directory(directory, verify, args.head, stems, excerpt)
    report.key_id = key_id
    _print(report, args, out)
    return report.exit_code


def _print(report: Report, args, out: TextIO) -> None:
    if not report.key_id:
        print('key: none (no public key: signatures not checked)', file=out)
        report.findings.append(Finding(evidence.UNSIGNED, 'no public key to check with'))
    elif not args.public_key:
        print(f'key: {report.key_id} (the copy in the archive: compare this key id with the '
              "station's published one, or give --public-key)", file=out)
    else:
        print(f'key: {report.key_id}', file=out)
    if not args.quiet:
        for stem in report.checked:
            print(f'ok: {stem}' + (' (held)' if stem in report.held else ''), file=out)
    for finding in report.findings:
        print(finding, file=out)
    print(f'head: {report.head_index} {report.head_hash}', file=out)
    if report.exit_code == ExitCode.OK:
        print(f'all holds: {len(report.checked)} clip(s) verified, {len(report.deleted)} '
              f'deleted by retention (logged), {len(report.held)} held', file=out)
    else:
        print(f'does not hold: {len(report.findings)} finding(s)', file=out)


if __name__ == '__main__':
    sys.exit(main())
