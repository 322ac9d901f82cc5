"""builtin_interfaces/Time <-> integer nanoseconds (the protocol's time). Nothing else."""

from builtin_interfaces.msg import Time

from v2x_common.timeutil import NS_PER_S, split_seconds, to_ns
from v2x_protocol.sender import InvalidTiming


def time_to_ns(t: Time) -> int:
    """builtin_interfaces/Time -> integer ns."""
    return to_ns(t)


def ns_to_time(ns: int) -> Time:
    """Integer ns -> builtin_interfaces/Time (negative clamps to 0)."""
    ns = max(0, int(ns))
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def seconds_to_ns(t: float) -> int:
    """Float seconds -> integer ns, rounded to the nanosecond as fill_stamp writes a Time
    (raises ValueError for a time that is not finite)."""
    sec, nsec = split_seconds(t)
    return sec * NS_PER_S + nsec


def checked_time_ns(t: Time, field: str) -> int:
    """time_to_ns, raising sender.InvalidTiming (naming field) for a time before 1970 or
    a nanosec of 10^9 or more."""
    if t.sec < 0 or not 0 <= t.nanosec < NS_PER_S:
        raise InvalidTiming(f'{field} {t.sec} s {t.nanosec} ns is not a time after 1970 '
                            '(nanosec must be < 10^9)')
    return time_to_ns(t)
