"""Start ROS executables as real processes for the console's tests and bench."""

import os
from pathlib import Path
import shutil
import signal
import subprocess


def start_node(exe: str, domain: int, log: Path, params: dict,
               param_files=()) -> subprocess.Popen:
    """exe --ros-args [--params-file F]... [-p k:=v]... on its own ROS domain and process
    group, output to log."""
    argv = [shutil.which(exe) or exe, '--ros-args']
    for f in param_files:
        argv += ['--params-file', str(f)]
    for key, value in params.items():
        argv += ['-p', f'{key}:={value}']
    with open(log, 'w') as out:
        return subprocess.Popen(argv, env=dict(os.environ, ROS_DOMAIN_ID=str(domain)),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGINT to the process group, SIGKILL after timeout."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
