import math

from builtin_interfaces.msg import Time
from hypothesis import given
from hypothesis import strategies as st
import pytest

from v2x_common.timeutil import fill_stamp, is_zero, iso, split_seconds, to_seconds


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_split_and_join_round_trip(t):
    """Seconds -> (sec, nanosec) -> seconds loses at most a nanosecond-ish rounding."""
    sec, nsec = split_seconds(t)
    assert 0 <= nsec < 1_000_000_000
    assert math.isclose(sec + nsec / 1e9, t, abs_tol=2e-6)


def test_fill_stamp_and_zero():
    """fill_stamp writes a Time message; is_zero recognises the unset time."""
    stamp = Time()
    assert is_zero(stamp)
    fill_stamp(stamp, 1737930000.25)
    assert (stamp.sec, stamp.nanosec) == (1737930000, 250_000_000)
    assert to_seconds(stamp) == 1737930000.25
    assert not is_zero(stamp)


def test_nanosecond_carry():
    """0.9999999999 s rounds up into the next second instead of nanosec == 1e9."""
    assert split_seconds(0.9999999999) == (1, 0)


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_split_rejects_non_finite(bad):
    """A NaN or infinite time is a caller error, not a silent zero."""
    with pytest.raises(ValueError):
        split_seconds(bad)


def test_iso():
    """ISO strings are UTC with milliseconds."""
    assert iso(1737930000.5) == '2025-01-26T22:20:00.500Z'
