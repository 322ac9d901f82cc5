"""v2x_hold_evidence: put a legal hold on a clip, or release it (an evidence log record).

    v2x_hold_evidence CLIP --reason TEXT [--release] [--state-dir DIR]
                      [--archive-dir DIR] [--evidence-key-file PEM]

A held clip and its sidecar are never deleted by event_clipper's retention (age, count or
byte cap). The hold and the release are signed records of the evidence log saying who
(the unix user running this command), when and why. The archive and the key default to
event_clipper's (its settings file in --state-dir, else the key the archive's
evidence_signer.json names). Exit status: 0 done (or already so),
1 the clip or the log cannot be read or written, 2 usage.
"""

import argparse
import os
import sys
from typing import TextIO

from v2x_evidence import log as evidence_log
from v2x_evidence.hold import HoldRefused, set_hold, unix_user
from v2x_recorder.evidence_cli import ExitCode, clip_stem, run
from v2x_recorder.v2x_make_clip import read_clipper_settings


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_hold_evidence', description=__doc__.split('\n')[0])
    p.add_argument('clip', help='the clip: accident_....mp4 / .json, or its stem')
    p.add_argument('--reason', required=True, help='why (recorded in the evidence log)')
    p.add_argument('--release', action='store_true', help='release the hold')
    p.add_argument('--state-dir', default='/var/lib/v2x/recorder',
                   help="event_clipper's state dir (its archive_dir and evidence key)")
    p.add_argument('--archive-dir', default='', help="default: event_clipper's")
    p.add_argument('--evidence-key-file', default=None,
                   help="the station's evidence key (default: event_clipper's)")
    return p


def main(argv=None, out: TextIO | None = None) -> int:
    """Hold or release; see --help."""
    return run(build_parser(), argv, out, _command)


def _command(args, out: TextIO) -> int:
    clipper = read_clipper_settings(args.state_dir)
    directory, stem = clip_stem(args.clip)
    if os.sep not in args.clip or not os.path.exists(os.path.join(directory, stem + '.json')):
        directory = args.archive_dir or clipper.get('archive_dir', '/var/archive')
    elif args.archive_dir:
        directory = args.archive_dir
    key_file = args.evidence_key_file
    if key_file is None:
        key_file = clipper.get('evidence_key_file', '')
    try:
        if key_file:
            log = evidence_log.EvidenceLog(directory, evidence_log.load_evidence_key(key_file),
                                           clipper.get('station_id', ''))
        else:  # the key event_clipper named in the archive, if any
            log = evidence_log.open_archive_log(directory)
        _, message = set_hold(log, stem, not args.release, unix_user(), args.reason)
    except evidence_log.KeyConfigError as exc:
        print(f'v2x_hold_evidence: {exc}', file=sys.stderr)
        return ExitCode.USAGE
    except (HoldRefused, OSError) as exc:
        print(f'v2x_hold_evidence: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    print(message, file=out)
    return ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
