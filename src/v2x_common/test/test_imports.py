"""The pure modules stay pure: the protocol core and v2x_common's pure helpers load
without rclpy, rcl_interfaces or an HTTP stack (what a non-ROS tool or a core imports)."""

import subprocess
import sys

PURE = ('v2x_protocol.wire', 'v2x_protocol.receiver', 'v2x_protocol.sender',
        'v2x_protocol.io.state', 'v2x_protocol.keys', 'v2x_common.params',
        'v2x_common.worker', 'v2x_common.files', 'v2x_common.geo', 'v2x_policy.policy',
        'v2x_policy.rules', 'v2x_intake.core')
HEAVY = ('rclpy', 'rcl_interfaces', 'fastapi', 'uvicorn', 'watchdog')


def test_pure_modules_import_no_ros_and_no_http_stack():
    """Importing every pure module loads none of rclpy, rcl_interfaces, FastAPI, uvicorn,
    watchdog."""
    code = (f'import sys\nfor m in {PURE!r}: __import__(m)\n'
            f'print(sorted(m for m in {HEAVY!r} if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == '[]'
