"""Rules of speed_policy: which alerts, how near, make the vehicle slow down or stop.

Pure Python (no rclpy, no v2x_msgs). The node reads Nav2-style parameters
(``rules: [slow_hazard, stop_blockage]``, then ``<name>.kinds``, ``<name>.max_distance_m``,
...) into plain values and calls :func:`parse_rules`; every error is a
:class:`v2x_common.params.ParameterError` that names the parameter at fault.
"""

from dataclasses import dataclass
import math
import re
from typing import Callable, Mapping, Sequence

from v2x_common import mappings
from v2x_common.params import ParameterError

# The PolicyState.ACTION_* constants (test_rules.py checks them against the message).
ACTION_NONE = 0
ACTION_SLOW_DOWN = 1
ACTION_STOP = 2

ACTIONS = {'slow_down': ACTION_SLOW_DOWN, 'stop': ACTION_STOP}
ACTION_NAMES = {ACTION_NONE: 'none', ACTION_SLOW_DOWN: 'slow_down', ACTION_STOP: 'stop'}

#: ``<name>.when_unknown``: what a rule does when no distance is known.
WHEN_UNKNOWN = ('act', 'ignore')
#: In ``<name>.kinds`` or ``<name>.suggest``: match every value.
ANY = 'any'

FIELDS = ('kinds', 'max_distance_m', 'min_severity', 'suggest', 'action', 'when_unknown')
#: Fields a listed rule may leave out, with the value it then gets.
OPTIONAL_FIELDS = {'min_severity': 'low', 'suggest': [ANY], 'when_unknown': 'act'}

#: The original operators' policy: collision or fire within 500 m -> slow down; blockage
#: within 200 m -> stop; a sender's SUGGEST_STOP within 200 m -> stop.
DEFAULT_RULE_NAMES = ('slow_hazard', 'stop_blockage', 'stop_suggested')
DEFAULT_RULES: Mapping[str, Mapping[str, object]] = {
    'slow_hazard': {
        'kinds': ['collision', 'fire'], 'max_distance_m': 500.0, 'min_severity': 'low',
        'suggest': [ANY], 'action': 'slow_down', 'when_unknown': 'act',
    },
    'stop_blockage': {
        'kinds': ['blockage'], 'max_distance_m': 200.0, 'min_severity': 'low',
        'suggest': [ANY], 'action': 'stop', 'when_unknown': 'act',
    },
    'stop_suggested': {
        'kinds': [ANY], 'max_distance_m': 200.0, 'min_severity': 'low',
        'suggest': ['stop'], 'action': 'stop', 'when_unknown': 'act',
    },
}

_RULE_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')


@dataclass(frozen=True)
class Rule:
    """One rule: alerts of these kinds/severities/suggestions within a distance -> action."""

    name: str
    kinds: frozenset | None  # None: any kind
    max_distance_m: float
    min_severity: int
    suggest: frozenset | None  # None: any suggestion
    action: int
    when_unknown: str = 'act'

    def matches(self, kind: int, severity: int, suggest: int) -> bool:
        """True when an alert's kind, severity and suggestion fall under this rule."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.suggest is not None and suggest not in self.suggest:
            return False
        return effective_severity(severity) >= self.min_severity

    def covers(self, distance_m: float) -> bool:
        """True when an alert this far (NaN: unknown) is near enough to act on."""
        if math.isnan(distance_m):
            return self.when_unknown == 'act'
        return distance_m <= self.max_distance_m


def effective_severity(severity: int) -> int:
    """A severity outside low..high is treated as high: an unreadable severity may be serious."""
    if severity in (mappings.SEVERITY_LOW, mappings.SEVERITY_MEDIUM, mappings.SEVERITY_HIGH):
        return severity
    return mappings.SEVERITY_HIGH


def _string_list(parameter: str, value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParameterError(parameter, f'expected a list of strings, got {value!r}')
    if not value:
        raise ParameterError(parameter, f"is empty; list values or '{ANY}'")
    return [v.strip().lower() for v in value]


def _code_set(parameter: str, value, lookup: Callable[[str], int]) -> frozenset | None:
    codes = set()
    for text in _string_list(parameter, value):
        if text == ANY:
            return None
        try:
            codes.add(lookup(text))
        except mappings.UnknownValue as exc:
            raise ParameterError(parameter, f"{exc} or '{ANY}'") from None
    return frozenset(codes)


def _distance(parameter: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(parameter, f'expected a distance in metres, got {value!r}')
    value = float(value)
    if math.isnan(value) or value < 0:
        raise ParameterError(parameter, f'must be a distance >= 0 m, got {value!r}')
    return value


def _choice(parameter: str, value, allowed: Sequence[str]) -> str:
    text = value.strip().lower().replace('-', '_') if isinstance(value, str) else value
    if text == 'slowdown':
        text = 'slow_down'
    if text not in allowed:
        raise ParameterError(parameter, f'unknown value {value!r}; expected one of '
                                       f'{", ".join(allowed)}')
    return text


def parse_rule(name: str, fields: Mapping[str, object]) -> Rule:
    """A Rule from its parameter values (None: not set); raises ParameterError naming the entry."""
    values = {}
    for field in FIELDS:
        value = fields.get(field)
        if value is None:
            if field not in OPTIONAL_FIELDS:
                raise ParameterError(f'{name}.{field}',
                                    f"rule '{name}' is listed in 'rules' but "
                                    f"'{name}.{field}' is not set")
            value = OPTIONAL_FIELDS[field]
        values[field] = value
    severity_param = f'{name}.min_severity'
    try:
        min_severity = mappings.severity_from_str(values['min_severity'])
    except mappings.UnknownValue as exc:
        raise ParameterError(severity_param, str(exc)) from None
    return Rule(
        name=name,
        kinds=_code_set(f'{name}.kinds', values['kinds'], mappings.kind_from_str),
        max_distance_m=_distance(f'{name}.max_distance_m', values['max_distance_m']),
        min_severity=min_severity,
        suggest=_code_set(f'{name}.suggest', values['suggest'], mappings.suggest_from_str),
        action=ACTIONS[_choice(f'{name}.action', values['action'], tuple(ACTIONS))],
        when_unknown=_choice(f'{name}.when_unknown', values['when_unknown'], WHEN_UNKNOWN),
    )


def check_rule_names(names) -> tuple[str, ...]:
    """The 'rules' list, checked: non-empty, unique, each usable as a parameter prefix."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise ParameterError('rules', f'expected a list of rule names, got {names!r}')
    if not names:
        raise ParameterError('rules', 'is empty: the policy would never act; list at least one '
                                     'rule')
    seen = set()
    for name in names:
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            raise ParameterError('rules', f'rule name {name!r} must start with a letter and hold '
                                         'only letters, digits and _')
        if name in seen:
            raise ParameterError('rules', f'rule {name!r} is listed twice')
        seen.add(name)
    return tuple(names)


def parse_rules(names, fields_of: Callable[[str], Mapping[str, object]]) -> tuple[Rule, ...]:
    """Every listed rule, in order; fields_of(name) gives that rule's parameter values."""
    return tuple(parse_rule(name, fields_of(name)) for name in check_rule_names(names))
