"""The common main() of the recorder's nodes: start-up errors, spin, quiet shutdown."""

from typing import Callable

from rclpy.exceptions import ParameterException

from v2x_common.node_main import run_node as common_run_node
from v2x_recorder.ffmpeg_tools import FfmpegNotFound
from v2x_recorder.params import BadParameter

EXIT_BAD_PARAMETER = 2
EXIT_NO_FFMPEG = 3


def run_node(name: str, factory: Callable[[], object], args=None) -> int:
    """rclpy.init, build the node, spin it; returns the process exit status."""
    # ParameterException: rclpy refuses a value of the wrong type (clip_every_alert:=3);
    # its message names the parameter. InvalidParameterTypeException derives from it.
    return common_run_node(name, factory, args, {BadParameter: EXIT_BAD_PARAMETER,
                                                 ParameterException: EXIT_BAD_PARAMETER,
                                                 FfmpegNotFound: EXIT_NO_FFMPEG})
