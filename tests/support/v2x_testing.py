"""Helpers for the workspace's tests (real rclpy; no mocks).

Every test gets its own ROS_DOMAIN_ID and its own multicast group and port, so tests
never see each other or a running demo.
"""

import os
import random
import socket
import subprocess
import time
from typing import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

# Fast DDS maps domain ids to UDP ports; 0..101 are safe everywhere. 0 is the default
# domain of anyone running ROS here, and the demo uses 61/62: tests draw from the rest.
_TEST_DOMAINS = [d for d in range(1, 101) if d not in (61, 62, 63)]  # 63: demo vehicle 2


def random_domain_id() -> int:
    """A random domain id for one test."""
    return random.SystemRandom().choice(_TEST_DOMAINS)


def random_group() -> tuple[str, int]:
    """A random administratively-scoped multicast group and a free-looking UDP port."""
    rnd = random.SystemRandom()
    group = f'239.{rnd.randint(100, 254)}.{rnd.randint(0, 254)}.{rnd.randint(1, 254)}'
    return group, rnd.randint(20000, 60000)


def free_tcp_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class RosHarness:
    """An rclpy context on its own domain, an executor, and spin-until helpers."""

    def __init__(self, domain_id: int | None = None):
        self.domain_id = random_domain_id() if domain_id is None else domain_id
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes = []

    def node(self, name: str, **kwargs):
        """A plain helper node in this context, spun by this harness."""
        n = rclpy.create_node(name, context=self.context, **kwargs)
        self.add(n)
        return n

    def add(self, node):
        """Spin an existing node (e.g. the node under test) with this harness."""
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def remove(self, node) -> None:
        """Stop spinning a node and destroy it (e.g. to restart the node under test)."""
        self.executor.remove_node(node)
        self._nodes.remove(node)
        node.destroy_node()

    def spin_for(self, seconds: float) -> None:
        """Spin for a fixed time."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def spin_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Spin until predicate() is true or the timeout passes; returns predicate()."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def close(self) -> None:
        """Destroy every node and shut the context down."""
        for n in self._nodes:
            self.executor.remove_node(n)
            n.destroy_node()
        self._nodes.clear()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no iproute2/iptables, ...)."""


def _sh(*cmd, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


class NetnsPair:
    """Two hosts for tests: network namespaces a and b joined by a veth pair.

    Addresses 10.23x.N.1 (a) and .2 (b) exist only inside the two namespaces the test made.
    ``loss`` drops that fraction of UDP datagrams arriving at b (iptables statistic), like a
    lossy radio link the sender cannot see. Use as a context manager; it removes both
    namespaces on exit. Raises NetnsUnavailable when namespaces cannot be made.
    """

    def __init__(self, loss: float = 0.0, subnet: int = 231):
        import shutil
        if os.geteuid() != 0:
            raise NetnsUnavailable('needs root to create network namespaces')
        if not shutil.which('ip') or (loss and not shutil.which('iptables')):
            raise NetnsUnavailable('needs the ip (iproute2) and iptables commands')
        rnd = random.SystemRandom()
        tag = f'{rnd.randint(0, 0xFFFFF):05x}'
        net = rnd.randint(1, 254)
        self.a, self.b = f'v2xa{tag}', f'v2xb{tag}'
        self.addr_a, self.addr_b = f'10.{subnet}.{net}.1', f'10.{subnet}.{net}.2'
        self._tag, self._loss = tag, loss

    def __enter__(self) -> 'NetnsPair':
        try:
            _sh('ip', 'netns', 'add', self.a)
        except subprocess.CalledProcessError as exc:
            raise NetnsUnavailable(
                f'cannot create network namespaces: {exc.stderr.strip()}') from None
        try:
            tag = self._tag
            _sh('ip', 'netns', 'add', self.b)
            _sh('ip', 'link', 'add', f'va{tag}', 'netns', self.a, 'type', 'veth', 'peer',
                'name', f'vb{tag}', 'netns', self.b)
            for ns, dev, addr in ((self.a, f'va{tag}', self.addr_a),
                                  (self.b, f'vb{tag}', self.addr_b)):
                _sh('ip', '-n', ns, 'addr', 'add', f'{addr}/24', 'dev', dev)
                _sh('ip', '-n', ns, 'link', 'set', dev, 'up', 'multicast', 'on')
                _sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
            if self._loss:
                drop = _sh('ip', 'netns', 'exec', self.b, 'iptables', '-A', 'INPUT', '-i',
                           f'vb{tag}', '-p', 'udp', '-m', 'statistic', '--mode', 'random',
                           '--probability', str(self._loss), '-j', 'DROP', check=False)
                if drop.returncode != 0:
                    raise NetnsUnavailable(
                        f'iptables statistic match unavailable: {drop.stderr.strip()}')
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for ns in (self.a, self.b):
            _sh('ip', 'netns', 'del', ns, check=False)

    def pids(self, ns: str) -> list[int]:
        """Processes running inside one of the namespaces."""
        return [int(p) for p in _sh('ip', 'netns', 'pids', ns).stdout.split()]


# --- node executables as processes (console tests and bench) ------------------------------

def start_node(exe: str, domain: int, log, params: dict, param_files=()) -> subprocess.Popen:
    """exe --ros-args [--params-file F]... [-p k:=v]... on its own ROS domain and process
    group, output to the file log."""
    import shutil
    argv = [shutil.which(exe) or exe, '--ros-args']
    for f in param_files:
        argv += ['--params-file', str(f)]
    for key, value in params.items():
        argv += ['-p', f'{key}:={value}']
    with open(log, 'w') as out:
        return subprocess.Popen(argv, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGINT to the process group, SIGKILL after timeout."""
    import signal
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
