"""Time helpers shared by the nodes (pure Python; works with any object with sec/nanosec)."""

from datetime import datetime, timezone
import math

NS_PER_S = 1_000_000_000


def to_seconds(stamp) -> float:
    """builtin_interfaces/Time (or anything with sec, nanosec) -> float seconds."""
    return stamp.sec + stamp.nanosec / NS_PER_S


def to_ns(stamp) -> int:
    """builtin_interfaces/Time (or anything with sec, nanosec) -> integer ns."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def split_seconds(t: float) -> tuple[int, int]:
    """Float seconds -> (sec, nanosec) with 0 <= nanosec < 1e9, rounding to the nanosecond."""
    if not math.isfinite(t):
        raise ValueError(f'time must be finite, got {t!r}')
    sec = math.floor(t)
    nsec = round((t - sec) * NS_PER_S)  # the fraction alone keeps float precision
    if nsec >= NS_PER_S:
        sec, nsec = sec + 1, nsec - NS_PER_S
    return int(sec), int(nsec)


def fill_stamp(stamp, t: float):
    """Write float seconds into a Time message in place and return it."""
    stamp.sec, stamp.nanosec = split_seconds(t)
    return stamp


def is_zero(stamp) -> bool:
    """True for the 'unset' time 0.0 used by the messages."""
    return stamp.sec == 0 and stamp.nanosec == 0


def iso(t: float) -> str:
    """Float seconds -> ISO 8601 UTC with milliseconds, e.g. 2026-11-26T05:28:08.123Z."""
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + f'{dt.microsecond // 1000:03d}Z'
