import pytest

from v2x_common import mappings as m
from v2x_msgs.msg import Alert


def test_constants_match_generated_message():
    """The pure-Python constants equal the ones rosidl generated from Alert.msg."""
    for name in ('KIND_UNKNOWN', 'KIND_COLLISION', 'KIND_FIRE', 'KIND_BLOCKAGE',
                 'SEVERITY_LOW', 'SEVERITY_MEDIUM', 'SEVERITY_HIGH',
                 'SUGGEST_NONE', 'SUGGEST_SLOW_DOWN', 'SUGGEST_STOP'):
        assert getattr(m, name) == getattr(Alert, name), name


@pytest.mark.parametrize('text,value', [
    ('collision', Alert.KIND_COLLISION),
    ('fire', Alert.KIND_FIRE),
    ('blockage', Alert.KIND_BLOCKAGE),
    ('Collision ', Alert.KIND_COLLISION),  # operators' typing: case and spaces
])
def test_kind_from_str(text, value):
    """Seed type strings map to Alert kinds."""
    assert m.kind_from_str(text) == value


@pytest.mark.parametrize('text,value', [
    ('low', Alert.SEVERITY_LOW), ('medium', Alert.SEVERITY_MEDIUM), ('high', Alert.SEVERITY_HIGH),
])
def test_severity_from_str(text, value):
    """Seed severity strings map to Alert severities."""
    assert m.severity_from_str(text) == value


@pytest.mark.parametrize('text,value', [
    ('slow_down', Alert.SUGGEST_SLOW_DOWN), ('slow-down', Alert.SUGGEST_SLOW_DOWN),
    ('slowdown', Alert.SUGGEST_SLOW_DOWN), ('stop', Alert.SUGGEST_STOP),
    ('none', Alert.SUGGEST_NONE),
])
def test_suggest_from_str(text, value):
    """Seed suggestion strings (and common spellings) map to Alert suggestions."""
    assert m.suggest_from_str(text) == value


@pytest.mark.parametrize('fn,bad,field', [
    (m.kind_from_str, 'meteor', 'type'),
    (m.severity_from_str, 'extreme', 'severity'),
    (m.suggest_from_str, 'reverse', 'suggest'),
    (m.kind_from_str, 3, 'type'),  # a number where a string belongs
])
def test_unknown_strings_raise_naming_field(fn, bad, field):
    """An unknown value raises UnknownValue naming the field and the allowed values."""
    with pytest.raises(m.UnknownValue) as err:
        fn(bad)
    assert err.value.field == field
    assert field in str(err.value) and repr(bad) in str(err.value)


def test_round_trip_all_values():
    """Every constant survives to_str -> from_str."""
    for text, value in m.KINDS.items():
        assert m.kind_from_str(m.kind_to_str(value)) == value == m.KINDS[text]
    for value in m.SEVERITIES.values():
        assert m.severity_from_str(m.severity_to_str(value)) == value
    for value in m.SUGGESTIONS.values():
        assert m.suggest_from_str(m.suggest_to_str(value)) == value


def test_to_str_of_unknown_numbers():
    """Numbers outside the tables do not crash the CSV/console writers."""
    assert m.kind_to_str(99) == 'unknown'
    assert m.severity_to_str(9) == '9'
    assert m.suggest_to_str(7) == '7'
