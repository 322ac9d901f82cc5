"""Legal hold: put on or release a clip's hold, as a signed record of the evidence log
(the library of v2x_hold_evidence and the console's hold action)."""

import os
import pwd

from v2x_common.timeutil import iso
from v2x_evidence import evidence
from v2x_evidence import log as evidence_log


class HoldRefused(ValueError):
    """The hold or release cannot be done (no such clip, not held); the message says why."""


def set_hold(log: evidence_log.EvidenceLog, stem: str, held: bool, who: str,
             why: str) -> tuple[dict | None, str]:
    """Hold (held=True) or release a clip of log's archive: (the record or None, message).

    Raises HoldRefused for a clip that is not there (holding) or not held (releasing),
    OSError when the log cannot be written.
    """
    if not why.strip():
        raise HoldRefused('a reason is required (--reason)')
    state = log.refresh()
    clip = state.clips.get(stem)
    present = os.path.exists(os.path.join(log.archive_dir, stem + '.json'))
    if held:
        if clip is not None and clip.held:
            return None, (f'{stem} already held since {clip.hold.get("time_iso", "")} by '
                          f'{clip.hold.get("who")}')
        if not present:
            raise HoldRefused(f'no clip {stem} in {log.archive_dir}')
        record = log.append(evidence.HOLD, stem=stem, who=who, why=why,
                            time_iso=iso(log.clock()))
        return record, f'held {stem} (entry {record["index"]})'
    if clip is None or not clip.held:
        raise HoldRefused(f'{stem} is not held')
    record = log.append(evidence.RELEASE, stem=stem, who=who, why=why,
                        time_iso=iso(log.clock()))
    return record, f'released {stem} (entry {record["index"]})'


def unix_user() -> str:
    """The name of the user running this process (its uid when it has none)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f'uid {os.geteuid()}'
