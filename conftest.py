"""Fixtures shared by every package's tests and tests/ (real rclpy, own domain per test)."""

import os

import pytest

from v2x_common.testing import NetnsPair, NetnsUnavailable, RosHarness, random_group


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
