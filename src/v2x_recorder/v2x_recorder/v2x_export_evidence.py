"""v2x_export_evidence: one file holding a clip and everything needed to verify it offline.

    v2x_export_evidence CLIP [--out FILE.tar] [--state-dir DIR] [--archive-dir DIR]

Writes a tar (default ``<stem>.evidence.tar`` here) with the clip, its sidecar and the
sidecar's signature, the evidence log records from the clip's record to the head (each
naming the hash of the one before), the signed head, the station's public key and a
README.txt of the verification commands (sha256sum and openssl alone, or
``v2x_verify_evidence FILE.tar``). Exit status: 0 written, 1 the clip is not in the
archive's evidence log or a file cannot be read or written, 2 usage.
"""

import argparse
import os
import sys
from typing import TextIO

from v2x_evidence.evidence import LOG_FILE
from v2x_evidence.export import ExportRefused, export
from v2x_recorder.evidence_cli import ExitCode, clip_stem, run
from v2x_recorder.v2x_make_clip import read_clipper_settings


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_export_evidence',
                                description=__doc__.split('\n')[0])
    p.add_argument('clip', help='the clip: accident_....mp4 / .json, or its stem')
    p.add_argument('--out', default='', help='the tar to write (default <stem>.evidence.tar)')
    p.add_argument('--state-dir', default='/var/lib/v2x/recorder',
                   help="event_clipper's state dir (its archive_dir)")
    p.add_argument('--archive-dir', default='', help="default: the clip's, else "
                   "event_clipper's")
    return p


def main(argv=None, out: TextIO | None = None) -> int:
    """Export; see --help."""
    return run(build_parser(), argv, out, _command)


def _command(args, out: TextIO) -> int:
    directory, stem = clip_stem(args.clip)
    if args.archive_dir:
        directory = args.archive_dir
    elif not os.path.exists(os.path.join(directory, LOG_FILE)):
        directory = read_clipper_settings(args.state_dir).get('archive_dir', '/var/archive')
    target = args.out or f'{stem}.evidence.tar'
    try:
        export(directory, stem, target)
    except (ExportRefused, OSError) as exc:
        print(f'v2x_export_evidence: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    print(f'wrote {target}', file=out)
    return ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
