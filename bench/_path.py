"""Put tests/support on sys.path, so a bench script imports the test harness (v2x_testing).

The harness is not in any runtime package (vehicles never install it); bench scripts run
from a workspace checkout: ``import _path  # noqa: F401`` before ``from v2x_testing ...``.
"""

from pathlib import Path
import sys

SUPPORT = str(Path(__file__).resolve().parents[1] / 'tests' / 'support')
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)
