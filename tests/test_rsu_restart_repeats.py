"""An RSU that crashes and restarts resumes repeating its live alert from its outbox, and
receivers count those datagrams as repeats, not as new deliveries.

The claim (docs/ARCHITECTURE.md, v2x_protocol.io.state.OutboxFile): the outbox is saved in
state_dir, a restart repeats what is still live "at once, in a new session". Real
processes: the installed `alert_gateway` (role rsu) is killed with SIGKILL (a crash, no
clean shutdown) and started again on the same state_dir; `v2x_inject` publishes the
alert; the receiver is the protocol's own Receiver on a real multicast socket, as a
vehicle runs it.
"""

import json
import os
from pathlib import Path
import secrets
import shutil
import signal
import subprocess
import time

import pytest

from v2x_bridge import net
from v2x_protocol.io import keys
from v2x_protocol.receiver import AlertDelivered, AlertRepeated, DatagramRejected, Receiver
from v2x_testing import random_domain_id, random_group

TIMEOUT_S = 30.0


class Listener:
    """A vehicle's receive pipeline on the test's group, counting what it decides."""

    def __init__(self, group: str, port: int, key: str):
        env = {keys.ENV_KEY: key}
        self.receiver = Receiver(keys.make_keyring('hmac', env=env))
        self.sock = net.open_receiver(group, port, '127.0.0.1', timeout_s=0.1)
        self.delivered, self.repeats, self.rejected, self.other = [], 0, [], 0

    def pump_until(self, cond, timeout_s: float = TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                return False
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            event = self.receiver.receive(data, time.time_ns(), time.monotonic_ns())
            if isinstance(event, AlertDelivered):
                self.delivered.append(event.alert)
            elif isinstance(event, AlertRepeated):
                self.repeats += 1
            elif isinstance(event, DatagramRejected):
                self.rejected.append(event.reason)
            else:
                self.other += 1  # heartbeats
        return True


def _start_rsu(env, group, port, state_dir, log):
    return subprocess.Popen(
        ['alert_gateway', '--ros-args', '-p', 'role:=rsu', '-p', 'station_id:=rsu_restart',
         '-p', f'group:={group}', '-p', f'port:={port}', '-p', 'iface:=127.0.0.1',
         '-p', 'repeat_interval_s:=0.2', '-p', f'state_dir:={state_dir}'],
        env=env, stdout=log, stderr=subprocess.STDOUT)


def _outbox_sequences(state_dir: Path) -> list[int]:
    try:
        return [a['sequence'] for a in json.loads((state_dir / 'outbox.json').read_text())]
    except (OSError, ValueError):
        return []


def test_crashed_rsu_resumes_repeats_that_receivers_count_as_repeats(tmp_path):
    """Kill -9 after the alert is out; the restarted RSU repeats it; receivers deliver it once."""
    if shutil.which('alert_gateway') is None:
        pytest.skip('alert_gateway not on PATH: source scripts/env.sh')
    group, port = random_group()
    key = secrets.token_hex(32)
    env = dict(os.environ, ROS_DOMAIN_ID=str(random_domain_id()), V2X_KEY=key)
    state = tmp_path / 'state'
    listener = Listener(group, port, key)
    procs = []
    try:
        with open(tmp_path / 'rsu1.log', 'wb') as log1:
            procs.append(_start_rsu(env, group, port, state, log1))
        inject = subprocess.run(
            ['v2x_inject', '--type', 'collision', '--severity', 'high', '--ttl-s', '120',
             '--wait-s', '20'], env=env, capture_output=True, text=True, timeout=60)
        assert inject.returncode == 0, inject.stdout + inject.stderr
        assert listener.pump_until(lambda: listener.delivered and listener.repeats >= 2), (
            f'{listener.rejected} {listener.other} {inject.stdout}')
        seq = listener.delivered[0].sequence
        # the outbox is saved at most once a second: the crash comes after it holds the alert
        assert listener.pump_until(lambda: _outbox_sequences(state) == [seq])
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        listener.pump_until(lambda: False, timeout_s=0.5)  # drain what was in flight
        before = listener.repeats

        with open(tmp_path / 'rsu2.log', 'wb') as log2:
            procs.append(_start_rsu(env, group, port, state, log2))
        assert listener.pump_until(lambda: listener.repeats >= before + 3), (
            (tmp_path / 'rsu2.log').read_text())
        assert 'repeating 1 live alerts from before' in (tmp_path / 'rsu2.log').read_text()
        assert [a.sequence for a in listener.delivered] == [seq], 'delivered again after restart'
        assert listener.rejected == []
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        listener.sock.close()
