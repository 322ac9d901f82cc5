"""Fixtures shared by every package's tests and tests/ (real rclpy, own domain per test)."""

import os

import pytest

from v2x_common.testing import RosHarness, random_group


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
