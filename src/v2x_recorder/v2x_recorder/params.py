"""Parameter tables of the recorder's nodes: declare with descriptors, read once, validate.

Each node lists its parameters as ``Param`` rows; ``declare_and_read`` declares them all
(numbers accept integer or floating values from launch files and YAML) and returns the
values, and ``BadParameter`` names the offending parameter for the start-up message.
"""

from dataclasses import dataclass
import math
import os
from typing import Any, Callable, Sequence

from rcl_interfaces.msg import ParameterDescriptor


class BadParameter(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""

    def __init__(self, name: str, problem: str):
        self.name = name
        super().__init__(f'parameter {name!r}: {problem}')


Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's), description, check."""

    name: str
    default: Any
    description: str
    check: Check | None = None


def positive(value) -> str | None:
    """Check: a finite number above zero."""
    return None if value > 0 and math.isfinite(value) else f'must be > 0, got {value!r}'


def non_negative(value) -> str | None:
    """Check: a finite number, zero or more."""
    return None if value >= 0 and math.isfinite(value) else f'must be >= 0, got {value!r}'


def not_empty(value) -> str | None:
    """Check: a non-blank string."""
    return None if str(value).strip() else 'must not be empty'


def directory(value) -> str | None:
    """Check: names a directory (which may not exist yet), not a file."""
    if not str(value).strip():
        return 'must name a directory'
    if os.path.exists(value) and not os.path.isdir(value):
        return f'{value!r} exists and is not a directory'
    return None


def _coerce(param: Param, value):
    if isinstance(param.default, bool):
        if not isinstance(value, bool):
            raise BadParameter(param.name, f'must be true or false, got {value!r}')
        return value
    if isinstance(param.default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadParameter(param.name, f'must be a number, got {value!r}')
        if isinstance(param.default, int):
            if not math.isfinite(value):
                raise BadParameter(param.name, f'must be a finite whole number, got {value!r}')
            if float(value) != int(value):
                raise BadParameter(param.name, f'must be a whole number, got {value!r}')
            return int(value)
        return float(value)
    if not isinstance(value, str):
        raise BadParameter(param.name, f'must be a string, got {value!r}')
    return value


def declare_and_read(node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare every row on node, read the values once, coerce and check them."""
    values = {}
    for p in params:
        numeric = isinstance(p.default, (int, float)) and not isinstance(p.default, bool)
        descriptor = ParameterDescriptor(description=p.description, read_only=True,
                                         dynamic_typing=numeric)
        raw = node.declare_parameter(p.name, p.default, descriptor).value
        value = _coerce(p, raw)
        if p.check is not None:
            problem = p.check(value)
            if problem:
                raise BadParameter(p.name, problem)
        values[p.name] = value
    return values


def make_dirs(**dirs: str) -> None:
    """Create each directory parameter's directory; BadParameter names the one that fails."""
    for name, path in dirs.items():
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise BadParameter(name, f'cannot create {path!r}: {exc.strerror}') from None

