"""The one table of exit statuses, for every node and every command-line tool.

docs/ARCHITECTURE.md ("Exit statuses") shows the same table. systemd's
Restart=on-failure restarts a node on any status but 0; 2 and 3 are worth a
``RestartPreventExitStatus=2 3``, since a restart does not fix them. A node stopped by
Ctrl-C or SIGTERM exits 0 (a service that was told to stop did not fail); a tool the
user interrupts exits 130 (128 + SIGINT, as a shell reports it).
"""

import enum


class ExitCode(enum.IntEnum):
    """Exit statuses of every executable (nodes and command-line tools)."""

    OK = 0
    #: an internal error (a traceback; a supervised worker died), or the work failed
    #: (ffmpeg failed, the service refused, a cancellation was not confirmed)
    ERROR = 1
    #: a bad parameter, flag or configuration, named in the message
    BAD_CONFIG = 2
    #: a program it needs is missing (ffmpeg)
    MISSING_TOOL = 3
    #: v2x_make_clip: nothing was recorded in the window
    NO_FOOTAGE = 4
    #: a wait ran out (v2x_make_clip --wait: no Clip in time)
    TIMEOUT = 5
    #: v2x_inject: nobody subscribed to the topic within --wait-s
    NO_SUBSCRIBER = 6
    #: v2x_verify_evidence: a clip, sidecar, signature or log record was changed, removed,
    #: reordered or cut short
    EVIDENCE_INVALID = 7
    #: v2x_verify_evidence: nothing was changed, but something is unsigned or not in the log
    EVIDENCE_UNSIGNED = 8
    #: a command-line tool stopped by Ctrl-C
    INTERRUPTED = 130

    # The same statuses under the names the CLIs and node_main used before.
    INTERNAL = 1
    USAGE = 2


def describe_table() -> list[tuple[int, str]]:
    """(status, name) of every status once, lowest first (for docs and --help)."""
    return [(int(code), code.name) for code in ExitCode]
