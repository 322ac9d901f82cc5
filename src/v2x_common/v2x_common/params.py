"""The one parameter mechanism of every node: a table of rows, declared, read once, checked.

Each node lists its parameters once, as a tuple of :class:`Param` rows (the shape of
generate_parameter_library's YAML, written in Python)::

    PARAMETERS = (
        Param('port', 5520, 'UDP port', in_range(1, 65535)),
        Param('auth_mode', 'hmac', 'hmac | ed25519 | none', one_of('hmac', 'ed25519', 'none')),
        Param('repeat_interval_s', 1.0, 'resend period', gt(0.0)),
    )

    values = declare_parameters(node, PARAMETERS)   # name -> typed value, checked
    settings = Settings(**values)                   # the node's frozen settings object

The row's type is its default's (bool, int, float, str, list of str/float/int; an empty
list names its ``type``). :func:`declare_parameters` declares every row with a
``ParameterDescriptor`` (description, read_only unless the row says a change at run time
is handled, integer_range / floating_point_range for :func:`in_range`, the checks as
additional_constraints), reads each value once, coerces it (a float parameter takes
``37`` as well as ``37.0``; an integer parameter takes ``3.0`` but not ``3.5``) and runs
the checks. Every problem, a wrongly typed value included, raises the one
:class:`ParameterError`, whose message is ``parameter '<name>': <problem>``;
``v2x_common.node_main`` prints it as ``<node>: parameter '<name>': <problem>`` and exits
2. Cross-parameter checks of a node raise the same error.

Pure Python but for :func:`declare_parameters`, which imports rcl_interfaces when called,
so cores (policy rules, intake settings) can raise :class:`ParameterError` without rclpy.
"""

from dataclasses import dataclass
import math
import os
from typing import Any, Callable, Iterable, Sequence

#: Row types (the ROS parameter types a row can have); ANY = dynamic, checked by the node.
BOOL, INTEGER, DOUBLE, STRING = 'bool', 'integer', 'double', 'string'
STRING_ARRAY, DOUBLE_ARRAY, INTEGER_ARRAY, ANY = ('string_array', 'double_array',
                                                  'integer_array', 'any')


class ParameterError(ValueError):
    """A parameter value the node cannot run with; ``name`` is the parameter.

    The message is ``parameter '<name>': <problem>``; node_main prefixes the node name.
    """

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"parameter '{name}': {problem}")


@dataclass(frozen=True)
class Check:
    """One validator: ``problem(value)`` is None when fine, else what is wrong.

    ``text`` says the rule (docs, the descriptor's additional_constraints); ``low`` /
    ``high`` (inclusive) go into the descriptor's range when both are set.
    """

    text: str
    problem: Callable[[Any], str | None]
    low: float | None = None
    high: float | None = None


def _number_check(text: str, ok: Callable[[float], bool], low=None, high=None) -> Check:
    def problem(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                not math.isnan(value) and ok(value):
            return None
        return f'must be {text}, got {value!r}'
    return Check(text, problem, low, high)


def gt(bound: float) -> Check:
    """Check: a number above ``bound`` (NaN never passes)."""
    return _number_check(f'> {bound:g}', lambda v: v > bound and math.isfinite(v))


def ge(bound: float) -> Check:
    """Check: a finite number at or above ``bound``."""
    return _number_check(f'>= {bound:g}', lambda v: v >= bound and math.isfinite(v))


def in_range(low: float, high: float) -> Check:
    """Check: a number within [low, high] (also the descriptor's range)."""
    return _number_check(f'within [{low:g}, {high:g}]', lambda v: low <= v <= high,
                         low, high)


def one_of(*choices: str) -> Check:
    """Check: one of the listed values."""
    text = 'one of ' + ', '.join(str(c) for c in choices)

    def problem(value):
        return None if value in choices else f'{value!r} is not {text}'
    return Check(text, problem)


def _not_empty(value) -> str | None:
    return None if str(value).strip() else 'must not be empty'


#: Check: a non-blank string.
not_empty = Check('not empty', _not_empty)


def _directory(value) -> str | None:
    if not str(value).strip():
        return 'must name a directory'
    if os.path.exists(value) and not os.path.isdir(value):
        return f'{value!r} exists and is not a directory'
    return None


#: Check: names a directory (which may not exist yet), not a file.
directory = Check('a directory', _directory)


def check(text: str, problem: Callable[[Any], str | None]) -> Check:
    """A node's own validator: ``problem(value)`` returns None or what is wrong."""
    return Check(text, problem)


_TYPES = {bool: BOOL, int: INTEGER, float: DOUBLE, str: STRING}
_ARRAYS = {str: STRING_ARRAY, float: DOUBLE_ARRAY, int: INTEGER_ARRAY}


@dataclass(frozen=True)
class Param:
    """One row: name, default, description, checks (one Check or a tuple), type, read_only.

    ``type`` defaults to the default's; give it for an empty list or ANY (a dynamically
    typed value such as a policy rule field, checked by the node). ``read_only=False``
    only where the node handles a change at run time. ``renamed_from``: the parameter's
    previous name, still read for one release with a deprecation warning (giving both
    names is refused).
    """

    name: str
    default: Any
    description: str
    checks: Check | tuple[Check, ...] = ()
    type: str = ''
    read_only: bool = True
    renamed_from: str = ''

    def __post_init__(self):
        if isinstance(self.checks, Check):
            object.__setattr__(self, 'checks', (self.checks,))
        if not self.type:
            object.__setattr__(self, 'type', type_of(self.default, self.name))

    @property
    def constraints(self) -> str:
        """The checks in words ('' when none)."""
        return '; '.join(c.text for c in self.checks)


def type_of(default, name: str = '?') -> str:
    """The row type of a default value."""
    if isinstance(default, (list, tuple)):
        if not default:
            raise ValueError(f'parameter {name!r}: an empty list default needs a type')
        return _ARRAYS[type(default[0])]
    return _TYPES[type(default)]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce(row: Param, value):
    """The value as the row's type; ParameterError when it is not one."""
    kind = row.type
    if kind == ANY:
        return list(value) if isinstance(value, (list, tuple)) else value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise ParameterError(row.name, f'must be true or false, got {value!r}')
        return value
    if kind == INTEGER:
        return _whole(row.name, value)
    if kind == DOUBLE:
        if not _is_number(value):
            raise ParameterError(row.name, f'must be a number, got {value!r}')
        return float(value)
    if kind == STRING:
        if not isinstance(value, str):
            raise ParameterError(row.name, f'must be a string, got {value!r}')
        return value
    if not isinstance(value, (list, tuple)):
        raise ParameterError(row.name, f'must be a list, got {value!r}')
    if kind == STRING_ARRAY:
        if not all(isinstance(v, str) for v in value):
            raise ParameterError(row.name, f'must be a list of strings, got {list(value)!r}')
        return list(value)
    if kind == DOUBLE_ARRAY:
        if not all(_is_number(v) for v in value):
            raise ParameterError(row.name, f'must be a list of numbers, got {list(value)!r}')
        return [float(v) for v in value]
    return [_whole(row.name, v) for v in value]


def _whole(name: str, value) -> int:
    if not _is_number(value):
        raise ParameterError(name, f'must be a whole number, got {value!r}')
    if not math.isfinite(value) or float(value) != int(value):
        raise ParameterError(name, f'must be a whole number, got {value!r}')
    return int(value)


def check_value(row: Param, value):
    """Coerce ``value`` to the row's type and run its checks; returns the value."""
    value = coerce(row, value)
    for c in row.checks:
        problem = c.problem(value)
        if problem:
            raise ParameterError(row.name, problem)
    return value


def defaults(table: Iterable[Param]) -> dict[str, Any]:
    """name -> default of every row (docs tests, YAML tests)."""
    return {row.name: row.default for row in table}


def descriptor(row: Param, dynamic: bool = True):
    """The row's rcl_interfaces ParameterDescriptor."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    extra = {}
    for c in row.checks:
        if c.low is None or c.high is None:
            continue
        if row.type == INTEGER:
            extra['integer_range'] = [IntegerRange(from_value=int(c.low), to_value=int(c.high),
                                                   step=1)]
        elif row.type == DOUBLE:
            extra['floating_point_range'] = [FloatingPointRange(
                from_value=float(c.low), to_value=float(c.high), step=0.0)]
    # dynamic_typing: a float parameter takes 37 as well as 37.0 (launch files and YAML
    # write both), and a wrongly typed value reaches coerce(), which names it, instead of
    # rclpy's own exception.
    return ParameterDescriptor(description=row.description, read_only=row.read_only,
                               dynamic_typing=dynamic, additional_constraints=row.constraints,
                               **extra)


def declare_parameters(node, table: Sequence[Param]) -> dict[str, Any]:
    """Declare every row on ``node``, read each value once, coerce and check it.

    Returns name -> value in table order; raises ParameterError for the first bad one.
    """
    from rclpy.exceptions import ParameterException
    from rclpy.parameter import Parameter
    overrides = getattr(node, '_parameter_overrides', {})
    values = {}
    for row in table:
        given = overrides.get(row.name)
        if given is not None:  # check before rclpy does, so the message is ours
            check_value(row, given.value)
        default, dynamic = row.default, True
        old = overrides.get(row.renamed_from) if row.renamed_from else None
        if old is not None:
            default = _renamed(node, row, old.value, given is not None)
        if isinstance(default, (list, tuple)) and not default:
            dynamic = False  # rclpy: declared by type only, so statically typed
            default = {STRING_ARRAY: Parameter.Type.STRING_ARRAY,
                       DOUBLE_ARRAY: Parameter.Type.DOUBLE_ARRAY,
                       INTEGER_ARRAY: Parameter.Type.INTEGER_ARRAY}[row.type]
        elif isinstance(default, tuple):
            default = list(default)
        try:
            param = node.declare_parameter(row.name, default, descriptor(row, dynamic))
        except ParameterException as exc:
            raise ParameterError(row.name, str(exc)) from None
        value = param.value
        if value is None and row.type != ANY:  # an empty list declared by type only
            value = list(row.default)
        values[row.name] = check_value(row, value)
    return values


def _renamed(node, row: Param, value, new_given: bool):
    """The value given under the row's old name (checked as the row), with a warning."""
    old = row.renamed_from
    if new_given:
        raise ParameterError(old, f"was renamed to '{row.name}': give only '{row.name}'")
    value = check_value(Param(old, row.default, row.description, row.checks, row.type),
                        value)
    node.get_logger().warning(f"parameter '{old}' is deprecated: it was renamed to "
                              f"'{row.name}'; the old name is read this release only")
    return value

