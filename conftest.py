"""Fixtures shared by every package's tests and tests/ (real rclpy, own domain per test)."""

import os
from pathlib import Path
import sys

import pytest

# The test harness lives beside the tests, not in a runtime package: vehicles never
# install it. Every test module (src/*/test, tests/) and bench/ imports it as v2x_testing.
sys.path.insert(0, str(Path(__file__).resolve().parent / 'tests' / 'support'))
from v2x_testing import NetnsPair, NetnsUnavailable, RosHarness, random_group  # noqa: E402


@pytest.fixture
def ros(monkeypatch):
    """A RosHarness on a random ROS_DOMAIN_ID; child processes inherit the domain."""
    harness = RosHarness()
    monkeypatch.setenv('ROS_DOMAIN_ID', str(harness.domain_id))
    yield harness
    harness.close()


@pytest.fixture
def mcast():
    """A random (group, port) for one test, on the loopback interface."""
    group, port = random_group()
    return {'group': group, 'port': port, 'iface': '127.0.0.1'}


@pytest.fixture
def is_root():
    """True when the tests may create network namespaces."""
    return os.geteuid() == 0


@pytest.fixture
def netns_pair(request):
    """Two network namespaces joined by a veth pair (root only; skips with the reason).

    Parametrize indirectly with the loss fraction at b, e.g.
    ``@pytest.mark.parametrize('netns_pair', [0.3], indirect=True)``.
    """
    loss = getattr(request, 'param', 0.0)
    try:
        with NetnsPair(loss=loss) as pair:
            yield pair
    except NetnsUnavailable as why:
        pytest.skip(str(why))
