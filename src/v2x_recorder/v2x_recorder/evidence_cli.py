"""What the evidence tools share: their exit codes, naming a clip, parsing the command line.

Each tool's main(argv=None, out=None) takes its arguments and output stream as parameters
(httpie style), so tests run them in-process.
"""

import argparse
import os
import sys
from typing import Callable, TextIO

from v2x_common.exit_codes import ExitCode
from v2x_evidence.evidence import SIG_SUFFIX

# The evidence tools' statuses are the one table's (v2x_common.exit_codes): 0 OK, 1 ERROR
# (the input cannot be read or written), 2 USAGE, 7 EVIDENCE_INVALID, 8 EVIDENCE_UNSIGNED.
__all__ = ['ExitCode', 'clip_stem', 'run']


def clip_stem(path: str) -> tuple[str, str]:
    """(directory, stem) of a clip named by any of its files (.mp4, .json, .sig) or stem."""
    directory, name = os.path.split(os.path.abspath(path))
    for ext in ('.mp4', '.json', SIG_SUFFIX):
        if name.endswith(ext):
            return directory, name[:-len(ext)]
    return directory, name


def run(parser: argparse.ArgumentParser, argv, out: TextIO | None,
        command: Callable[[argparse.Namespace, TextIO], int]) -> int:
    """Parse argv and run command(args, out); argparse's own end (--help: OK, a bad flag:
    USAGE, its message on stderr) becomes an exit code instead of SystemExit."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return ExitCode.OK if exc.code == 0 else ExitCode.USAGE
    return command(args, out or sys.stdout)
