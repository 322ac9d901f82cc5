"""The seed's strings <-> the Alert constants (pure Python, no rclpy).

The original operators typed ``--type collision --severity high --suggest slow_down``
and wrote those strings into event JSON and the CSV log. The numbers below are the
constants of v2x_msgs/Alert.msg; ``test_mappings.py`` checks them against the
generated message class so the two cannot drift apart.
"""

KIND_UNKNOWN = 0
KIND_COLLISION = 1
KIND_FIRE = 2
KIND_BLOCKAGE = 3
SEVERITY_LOW = 1
SEVERITY_MEDIUM = 2
SEVERITY_HIGH = 3
SUGGEST_NONE = 0
SUGGEST_SLOW_DOWN = 1
SUGGEST_STOP = 2

KINDS = {
    'unknown': KIND_UNKNOWN,
    'collision': KIND_COLLISION,
    'fire': KIND_FIRE,
    'blockage': KIND_BLOCKAGE,
}
SEVERITIES = {
    'low': SEVERITY_LOW,
    'medium': SEVERITY_MEDIUM,
    'high': SEVERITY_HIGH,
}
SUGGESTIONS = {
    'none': SUGGEST_NONE,
    'slow_down': SUGGEST_SLOW_DOWN,
    'stop': SUGGEST_STOP,
}

_KIND_NAMES = {v: k for k, v in KINDS.items()}
_SEVERITY_NAMES = {v: k for k, v in SEVERITIES.items()}
_SUGGEST_NAMES = {v: k for k, v in SUGGESTIONS.items()}


class UnknownValue(ValueError):
    """A string or number that names no kind, severity or suggestion."""

    def __init__(self, field: str, value, allowed):
        self.field = field
        self.value = value
        self.allowed = sorted(allowed)
        allowed_text = ', '.join(map(str, self.allowed))
        super().__init__(f'unknown {field} {value!r}; expected one of {allowed_text}')


def _lookup(table: dict, field: str, text: str) -> int:
    if not isinstance(text, str):
        raise UnknownValue(field, text, table)
    key = text.strip().lower().replace('-', '_')
    if key == 'slowdown':
        key = 'slow_down'
    try:
        return table[key]
    except KeyError:
        raise UnknownValue(field, text, table) from None


def kind_from_str(text: str) -> int:
    """'collision' -> KIND_COLLISION; raises UnknownValue naming the field."""
    return _lookup(KINDS, 'type', text)


def severity_from_str(text: str) -> int:
    """'high' -> SEVERITY_HIGH."""
    return _lookup(SEVERITIES, 'severity', text)


def suggest_from_str(text: str) -> int:
    """'slow_down' (or 'slow-down', 'slowdown') -> SUGGEST_SLOW_DOWN."""
    return _lookup(SUGGESTIONS, 'suggest', text)


def kind_to_str(value: int) -> str:
    """KIND_COLLISION -> 'collision'; an unknown number -> 'unknown'."""
    return _KIND_NAMES.get(int(value), 'unknown')


def severity_to_str(value: int) -> str:
    """SEVERITY_HIGH -> 'high'; an unknown number -> its digits."""
    return _SEVERITY_NAMES.get(int(value), str(int(value)))


def suggest_to_str(value: int) -> str:
    """SUGGEST_SLOW_DOWN -> 'slow_down'; an unknown number -> its digits."""
    return _SUGGEST_NAMES.get(int(value), str(int(value)))
