import math

import pytest

from v2x_common import mappings
from v2x_common.params import ParameterError
from v2x_policy import rules
from v2x_policy.rules import DEFAULT_RULES, parse_rule, parse_rules


def _fields(**changes):
    base = dict(DEFAULT_RULES['slow_hazard'])
    base.update(changes)
    return base


def test_action_constants_match_policy_state():
    """The core's ACTION_* numbers are those of v2x_msgs/PolicyState."""
    from v2x_msgs.msg import PolicyState
    assert rules.ACTION_NONE == PolicyState.ACTION_NONE
    assert rules.ACTION_SLOW_DOWN == PolicyState.ACTION_SLOW_DOWN
    assert rules.ACTION_STOP == PolicyState.ACTION_STOP


def test_default_rules_parse_to_the_operators_policy():
    """Defaults: collision/fire <= 500 m slow down; blockage <= 200 m stop; suggest stop stop."""
    parsed = parse_rules(list(rules.DEFAULT_RULE_NAMES), lambda n: DEFAULT_RULES[n])
    slow, block, suggested = parsed
    assert slow.kinds == {mappings.KIND_COLLISION, mappings.KIND_FIRE}
    assert (slow.max_distance_m, slow.action) == (500.0, rules.ACTION_SLOW_DOWN)
    assert block.kinds == {mappings.KIND_BLOCKAGE}
    assert (block.max_distance_m, block.action) == (200.0, rules.ACTION_STOP)
    assert suggested.kinds is None and suggested.suggest == {mappings.SUGGEST_STOP}
    assert (suggested.max_distance_m, suggested.action) == (200.0, rules.ACTION_STOP)


def test_rule_matching_by_kind_severity_suggest_and_distance():
    """A rule matches only its kinds, severities at or above the minimum, its suggestions."""
    rule = parse_rule('r', _fields(min_severity='medium', suggest=['slow_down', 'stop']))
    assert rule.matches(mappings.KIND_FIRE, mappings.SEVERITY_MEDIUM, mappings.SUGGEST_STOP)
    assert not rule.matches(mappings.KIND_BLOCKAGE, mappings.SEVERITY_HIGH,
                            mappings.SUGGEST_STOP)
    assert not rule.matches(mappings.KIND_FIRE, mappings.SEVERITY_LOW, mappings.SUGGEST_STOP)
    assert not rule.matches(mappings.KIND_FIRE, mappings.SEVERITY_HIGH, mappings.SUGGEST_NONE)
    # An unreadable severity counts as high (fail safe).
    assert rule.matches(mappings.KIND_FIRE, 0, mappings.SUGGEST_STOP)
    assert rule.covers(500.0) and not rule.covers(500.01)
    assert rule.covers(math.nan)
    assert not parse_rule('r', _fields(when_unknown='ignore')).covers(math.nan)


def test_optional_fields_take_defaults_and_strings_stand_for_lists():
    """min_severity, suggest and when_unknown may be left out; a lone string is a list."""
    rule = parse_rule('mine', {'kinds': 'fire', 'max_distance_m': 50, 'action': 'stop'})
    assert rule.kinds == {mappings.KIND_FIRE} and rule.max_distance_m == 50.0
    assert rule.min_severity == mappings.SEVERITY_LOW and rule.suggest is None
    assert rule.when_unknown == 'act' and rule.action == rules.ACTION_STOP


@pytest.mark.parametrize('fields, parameter, words', [
    # a listed rule with no fields at all: the first required entry is named
    ({}, 'r.kinds', 'is not set'),
    # a rule missing only its action
    ({'kinds': ['fire'], 'max_distance_m': 10.0}, 'r.action', 'is not set'),
    # an unknown kind
    (_fields(kinds=['collision', 'meteor']), 'r.kinds', 'meteor'),
    # an unknown action
    (_fields(action='honk'), 'r.action', 'honk'),
    # a negative distance
    (_fields(max_distance_m=-1.0), 'r.max_distance_m', '>= 0'),
    # NaN is no distance
    (_fields(max_distance_m=math.nan), 'r.max_distance_m', '>= 0'),
    # a distance given as text
    (_fields(max_distance_m='far'), 'r.max_distance_m', 'metres'),
    # a bool is not a distance even though Python calls it an int
    (_fields(max_distance_m=True), 'r.max_distance_m', 'metres'),
    # an unknown severity
    (_fields(min_severity='extreme'), 'r.min_severity', 'extreme'),
    # an unknown suggestion
    (_fields(suggest=['honk']), 'r.suggest', 'honk'),
    # an empty kinds list
    (_fields(kinds=[]), 'r.kinds', 'empty'),
    # numbers where strings belong
    (_fields(kinds=[1, 2]), 'r.kinds', 'list of strings'),
    # a when_unknown that is neither act nor ignore
    (_fields(when_unknown='maybe'), 'r.when_unknown', 'maybe'),
])
def test_bad_rule_entries_name_the_parameter(fields, parameter, words):
    """Each bad rule entry raises ParameterError naming '<rule>.<field>' and the problem."""
    with pytest.raises(ParameterError) as info:
        parse_rule('r', fields)
    assert info.value.name == parameter
    assert parameter in str(info.value) and words in str(info.value)


@pytest.mark.parametrize('names, words', [
    ([], 'empty'),  # a filter with no rules would never act
    (['a', 'a'], 'twice'),  # a duplicate would declare the same parameters twice
    (['has space'], 'letter'),  # not usable as a parameter prefix
    (['1st'], 'letter'),  # must start with a letter
    ('slow_hazard', 'list'),  # a string, not a list
])
def test_bad_rule_lists_name_rules(names, words):
    """A bad 'rules' list raises ParameterError naming 'rules'."""
    with pytest.raises(ParameterError) as info:
        parse_rules(names, lambda n: DEFAULT_RULES['slow_hazard'])
    assert info.value.name == 'rules' and words in str(info.value)
