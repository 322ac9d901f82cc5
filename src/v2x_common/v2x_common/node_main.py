"""The one main() of every node: init, build, spin, quiet shutdown, errors as exit codes.

    def main(args=None) -> int:
        return run_node('speed_policy', SpeedPolicy, args)

    # several nodes in one process, one executor (composition):
    run_nodes([('alert_gateway', AlertGateway), ('speed_policy', SpeedPolicy)], args)

Exit codes: the one table of v2x_common.exit_codes (systemd's Restart=on-failure restarts
on any but 0; 2 and 3 are worth a ``RestartPreventExitStatus=2 3``, since a restart does
not fix them). What a node's main returns:

- 0 ``EXIT_OK``: stopped by Ctrl-C, SIGTERM, an external shutdown or the stop predicate.
- 1 ``EXIT_INTERNAL``: an internal error (an uncaught exception prints its traceback; a
  node that sets ``node.exit_code = EXIT_INTERNAL`` ends main() with it, e.g. when a
  supervised worker died) or a start-up failure listed in ``startup_errors``.
- 2 ``EXIT_BAD_CONFIG``: a bad parameter or configuration (``ParameterError``, or rclpy's
  ParameterException), printed on stderr as ``<node>: parameter '<name>': <problem>``;
  also arguments rcl cannot parse (``-p name:=`` with no value).
- 3 ``EXIT_MISSING_TOOL``: a program the node runs is missing (the recorder maps its
  FfmpegNotFound to it through ``startup_errors``).

Signals: SIGINT and SIGTERM only ask the spin to stop (a flag, checked every ``POLL_S``);
nothing is raised inside whatever code the signal happens to interrupt. rclpy's own
handlers (and Python's KeyboardInterrupt) raise at any bytecode, also inside rclpy's C++
conversion of a message being taken, where pybind11 turns the interrupt into a
RuntimeError ("Unable to convert call argument '0' to Python object") and the node died
with status 1 and a traceback on an ordinary Ctrl-C (seen in CI, Kilted and Jazzy). A
second signal while stopping raises KeyboardInterrupt (a callback that never returns
still gives way). The context outlives destroy_node either way (a node may publish or
wait for acknowledgements while it stops). ``stop_when(nodes)`` ends the spin with 0
once it returns true (checked every ``POLL_S``). The nodes are always destroyed (closing
sockets, stopping workers and children), in reverse order, and the context shut down.
Works on Humble (no ``with rclpy.init()``).
"""

import signal
import sys
from typing import Callable, Mapping, Sequence

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from v2x_common.exit_codes import ExitCode
from v2x_common.params import ParameterError

EXIT_OK = ExitCode.OK
EXIT_INTERNAL = ExitCode.ERROR
EXIT_BAD_CONFIG = ExitCode.BAD_CONFIG
EXIT_MISSING_TOOL = ExitCode.MISSING_TOOL


POLL_S = 0.2


class _StopRequest:
    """The SIGINT/SIGTERM handler: the first signal asks the spin to stop, a second one
    raises KeyboardInterrupt."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def run_node(name: str, factory: Callable[[], object], args=None,
             startup_errors: Mapping[type, int] | None = None, *,
             stop_when: Callable[[list], bool] | None = None) -> int:
    """rclpy.init, build the node with factory(), spin it; returns the exit status."""
    return run_nodes([(name, factory)], args, startup_errors, stop_when=stop_when)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ParameterError):
        return str(exc)
    if isinstance(exc, ParameterException):  # rclpy's own; its text names the parameter
        return f'parameter: {exc}'
    return f'cannot start: {exc}'  # a node's startup_errors


def run_nodes(nodes: Sequence[tuple[str, Callable[[], object]]], args=None,
              startup_errors: Mapping[type, int] | None = None, *,
              stop_when: Callable[[list], bool] | None = None) -> int:
    """Build each (name, factory) in order into one executor and spin them together.

    A start-up error names the node that raised it. A node's ``exit_code`` attribute, once
    not None, ends the spin with that status (the first such node wins).
    """
    errors = [(ParameterError, EXIT_BAD_CONFIG), (ParameterException, EXIT_BAD_CONFIG),
              *(startup_errors or {}).items()]
    stop = _StopRequest()
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # noqa: BLE001 -- rcl's RCLError: an unparsable --ros-args
        print(f'{nodes[0][0] if nodes else "node"}: bad arguments: {exc}', file=sys.stderr)
        return int(EXIT_BAD_CONFIG)
    stop.install()
    built = []
    status = EXIT_OK
    current = nodes[0][0] if nodes else ''
    executor = None
    try:
        for name, factory in nodes:
            if stop.requested:
                raise KeyboardInterrupt
            current = name
            built.append(factory())
        executor = SingleThreadedExecutor()
        for node in built:
            executor.add_node(node)
        current = ', '.join(name for name, _ in nodes)
        status = _spin(executor, built, stop_when, stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        for kind, code in errors:
            if isinstance(exc, kind):
                print(f'{current}: {_message(exc)}', file=sys.stderr)
                status = code
                break
        else:
            raise
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=0)
        for node in reversed(built):
            node.destroy_node()
        rclpy.try_shutdown()
    return int(status)


def _spin(executor, nodes: list, stop_when, stop: _StopRequest) -> int:
    while rclpy.ok() and not stop.requested:
        executor.spin_once(timeout_sec=POLL_S)
        for node in nodes:
            code = getattr(node, 'exit_code', None)
            if code is not None:
                return code
        if stop_when is not None and stop_when(nodes):
            return EXIT_OK
    return EXIT_OK
