"""Fixtures shared by v2x_denm's tests."""

import os
import random
import shutil
import subprocess

import pytest


@pytest.fixture(scope='module')
def veth():
    """A veth pair (a, b) in this namespace, up, removed afterwards (root only)."""
    if os.geteuid() != 0 or not shutil.which('ip'):
        pytest.skip('needs root and ip (iproute2) for a veth pair')
    tag = f'{random.SystemRandom().randint(0, 0xFFFFF):05x}'
    a, b = f'vdn{tag}a', f'vdn{tag}b'
    made = subprocess.run(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f'cannot create a veth pair: {made.stderr.strip()}')
    try:
        for dev in (a, b):
            subprocess.run(['ip', 'link', 'set', dev, 'up'], check=True)
        yield a, b
    finally:
        subprocess.run(['ip', 'link', 'del', a], capture_output=True)
