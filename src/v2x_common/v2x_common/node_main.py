"""The one main() of every node: init, build, spin, quiet shutdown, start-up errors as codes.

    def main(args=None):
        sys.exit(run_node('speed_policy', SpeedPolicy, args, {SettingsError: 2}))

A start-up error listed in ``startup_errors`` (exception type -> exit status) is printed
as ``<node>: <message>`` on stderr and ends the process with that status, so a bad
parameter stops the node at start-up with a message naming it. Ctrl-C and an external
shutdown end quietly with 0. The node is always destroyed (closing its sockets, stopping
its children) and the context shut down. Works on Humble (no ``with rclpy.init()``).
"""

import sys
from typing import Callable, Mapping

import rclpy
from rclpy.executors import ExternalShutdownException

EXIT_OK = 0


def run_node(name: str, factory: Callable[[], object], args=None,
             startup_errors: Mapping[type, int] | None = None) -> int:
    """rclpy.init, build the node with factory(), spin it; returns the exit status."""
    errors = tuple((startup_errors or {}).items())
    rclpy.init(args=args)
    node = None
    status = EXIT_OK
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        for kind, code in errors:
            if isinstance(exc, kind):
                print(f'{name}: {exc}', file=sys.stderr)
                status = code
                break
        else:
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status
