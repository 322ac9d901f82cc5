"""node_main's signal handling: a Ctrl-C asks the spin to stop; it never raises inside the
code it interrupts (rclpy's own handler did, and a message being taken then died in C++
as a RuntimeError, exit 1)."""

import os
import subprocess
import sys

from v2x_testing import random_domain_id

# A node whose timer callback signals its own process and then keeps working: with the
# old handlers a KeyboardInterrupt cut the callback short; now it completes and main()
# returns 0 at the next poll.
SCRIPT = """
import os, signal, sys
from rclpy.node import Node
from v2x_common.node_main import run_node

class Busy(Node):
    def __init__(self):
        super().__init__('busy')
        self.rounds = 0
        self.create_timer(0.01, self.work)

    def work(self):
        self.rounds += 1
        if self.rounds == 3:
            os.kill(os.getpid(), signal.SIG{name})
            total = 0
            for i in range(300000):  # bytecodes: where Python runs signal handlers
                total += i
            print('callback completed', flush=True)

sys.exit(run_node('busy', Busy))
"""


def _run(name: str, script: str = SCRIPT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', script.replace('{name}', name)],
                          env={**os.environ, 'ROS_DOMAIN_ID': str(random_domain_id())},
                          capture_output=True, text=True, timeout=60)


def test_sigint_stops_the_spin_without_raising_inside_a_callback():
    done = _run('INT')
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'callback completed' in done.stdout, done.stderr
    assert 'Traceback' not in done.stderr, done.stderr


def test_sigterm_stops_the_spin_the_same_way():
    done = _run('TERM')
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'callback completed' in done.stdout, done.stderr


def test_a_second_signal_gives_way_when_a_callback_never_returns():
    done = _run('INT', SCRIPT.replace(
        "print('callback completed', flush=True)",
        'os.kill(os.getpid(), signal.SIGINT)\n            while True: pass'))
    assert done.returncode == 0, done.stdout + done.stderr
