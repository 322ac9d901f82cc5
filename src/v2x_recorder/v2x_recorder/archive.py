"""Retention of the clip archive: capped by count, bytes and age; evidence of alerts last.

A clip is its accident_<T0>_<id>.mp4, .json sidecar and .sig signature together (or the
sidecar alone when no footage existed). Files still being written (``.part``) are never
listed, and the caller names the clips in progress as protected.

A clip under a legal hold (held) is never deleted, by age or by a cap: when held clips
alone exceed a cap, the others go (oldest first) and the cap is exceeded (over_cap says by
how much, for the operator's ERROR).

Clips cut for real alerts (sidecar origin 'alert') are evidence: the caps delete every
other clip (made by hand: v2x_make_clip, the service) before the first of them, and the
age limit applies to them only when ``alert_max_age_s`` is set. A clip whose sidecar
cannot be read counts as evidence (never deleted first by mistake).
"""

from dataclasses import dataclass
import os
from typing import Iterable, Sequence

from v2x_common.clip_archive import (  # noqa: F401 -- the archive's listing, shared
    ALERT_ORIGIN,
    ArchivedClip,
    scan_archive,
)


@dataclass(frozen=True)
class ArchivePolicy:
    """Limits of the archive; 0 means no limit of that kind."""

    max_count: int
    max_bytes: int
    max_age_s: float
    alert_max_age_s: float = 0.0  # clips of real alerts: 0 = no age limit


def plan_archive_deletions(clips: Sequence[ArchivedClip], now: float, policy: ArchivePolicy,
                           protected: Iterable[str] = (),
                           held: Iterable[str] = ()) -> list[tuple[ArchivedClip, str]]:
    """(clip, reason) to delete; reason is 'age', 'count' or 'bytes'.

    By age: clips older than max_age_s, evidence of alerts only past alert_max_age_s (if
    set). Then, while a cap is exceeded: hand-made clips oldest first, then evidence oldest
    first. Protected stems (clips in progress) and held stems (legal hold) are never
    deleted, nor by a cap the newest evidence clip (new clips of alerts are still cut and
    kept when held clips fill the cap: the cap is exceeded, see over_cap).
    """
    keep_out = set(protected) | set(held)
    doomed: list[tuple[ArchivedClip, str]] = []
    count = len(clips)
    total = sum(c.size for c in clips)
    left = []
    for clip in clips:
        limit = policy.alert_max_age_s if clip.is_evidence else policy.max_age_s
        if clip.stem not in keep_out and limit > 0 and now - clip.mtime > limit:
            doomed.append((clip, 'age'))
            count -= 1
            total -= clip.size
        else:
            left.append(clip)
    order = ([c for c in left if not c.is_evidence] + [c for c in left if c.is_evidence])
    evidence = [c for c in clips if c.is_evidence]
    newest = max(evidence, key=lambda c: (c.mtime, c.stem)).stem if evidence else None
    for clip in order:
        if clip.stem in keep_out or clip.stem == newest:  # the alert's clip just cut stays
            continue
        if policy.max_count > 0 and count > policy.max_count:
            reason = 'count'
        elif policy.max_bytes > 0 and total > policy.max_bytes:
            reason = 'bytes'
        else:
            break
        doomed.append((clip, reason))
        count -= 1
        total -= clip.size
    return doomed


def delete_clip(clip: ArchivedClip) -> list[str]:
    """Remove a clip's files (already gone is fine); the problems, [] when all went."""
    problems = []
    for path in clip.files:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f'{path}: {exc.strerror or exc}')
    return problems


def over_cap(clips: Sequence[ArchivedClip], doomed: Sequence[tuple[ArchivedClip, str]],
             policy: ArchivePolicy, held: Iterable[str] = ()) -> str:
    """'' when the clips left after doomed fit the caps; else what exceeds which cap,
    with the held clips' share (what the operator must act on)."""
    gone = {clip.stem for clip, _ in doomed}
    left = [c for c in clips if c.stem not in gone]
    held = set(held)
    held_clips = [c for c in left if c.stem in held]
    held_text = (f'{len(held_clips)} held clip(s), {sum(c.size for c in held_clips)} B')
    total = sum(c.size for c in left)
    if policy.max_bytes > 0 and total > policy.max_bytes:
        return (f'archive holds {total} B, over archive_max_bytes {policy.max_bytes} B: '
                f'{held_text} are never deleted; release holds or raise the cap')
    if policy.max_count > 0 and len(left) > policy.max_count:
        return (f'archive holds {len(left)} clips, over archive_max_count '
                f'{policy.max_count}: {held_text} are never deleted; release holds or '
                'raise the cap')
    return ''
