"""The common main() of the recorder's nodes: start-up errors, spin, quiet shutdown."""

import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException

from v2x_recorder.ffmpeg_tools import FfmpegNotFound
from v2x_recorder.params import BadParameter

EXIT_OK = 0
EXIT_BAD_PARAMETER = 2
EXIT_NO_FFMPEG = 3


def run_node(name: str, factory: Callable[[], object], args=None) -> int:
    """rclpy.init, build the node, spin it; returns the process exit status."""
    rclpy.init(args=args)
    node = None
    status = EXIT_OK
    try:
        node = factory()
        rclpy.spin(node)
    except BadParameter as exc:
        print(f'{name}: {exc}', file=sys.stderr)
        status = EXIT_BAD_PARAMETER
    except FfmpegNotFound as exc:
        print(f'{name}: {exc}', file=sys.stderr)
        status = EXIT_NO_FFMPEG
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status
