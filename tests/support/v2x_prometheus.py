"""A real Prometheus server (Debian's prometheus 2.42) for tests and benches.

`Prometheus(targets, directory)` writes a scrape config, starts the server on a free
loopback port in the foreground and answers PromQL through its HTTP API (/api/v1/query).
No mocks: the server scrapes our exporters over HTTP as it would in production."""

import json
from pathlib import Path
import shutil
import signal
import subprocess
import time
from urllib.parse import urlencode
from urllib.request import urlopen

from v2x_testing import free_tcp_port

PROMETHEUS = shutil.which('prometheus') or '/usr/bin/prometheus'


def missing() -> str:
    """'' when the prometheus server is installed, else the reason a test skips."""
    if Path(PROMETHEUS).exists():
        return ''
    return 'prometheus is not installed (full install as root: apt-get install prometheus)'


class Prometheus:
    """A scraping server; ``targets`` maps a job name to 'host:port' of a /metrics."""

    def __init__(self, targets: dict[str, str], directory: Path, interval_s: float = 0.5):
        directory.mkdir(parents=True, exist_ok=True)
        jobs = ''.join(
            f"  - job_name: {name}\n    static_configs:\n      - targets: ['{target}']\n"
            for name, target in targets.items())
        config = directory / 'prometheus.yml'
        every = f'{round(interval_s * 1000)}ms'
        config.write_text(f'global:\n  scrape_interval: {every}\n  scrape_timeout: {every}\n'
                          f'scrape_configs:\n{jobs}')
        self.port = free_tcp_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self._log = open(directory / 'prometheus.log', 'w')
        self.proc = subprocess.Popen(
            [PROMETHEUS, f'--config.file={config}', f'--storage.tsdb.path={directory}/tsdb',
             f'--web.listen-address=127.0.0.1:{self.port}'],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def query(self, promql: str) -> list[dict]:
        """The result vector of an instant query ([] while the server is not up)."""
        try:
            with urlopen(f'{self.url}/api/v1/query?{urlencode({"query": promql})}',
                         timeout=5) as reply:
                body = json.load(reply)
        except OSError:
            return []
        return body['data']['result'] if body.get('status') == 'success' else []

    def wait_for(self, promql: str, ok, timeout: float = 60.0) -> list[dict]:
        """Query until ``ok(result)`` holds; the last result either way."""
        end = time.monotonic() + timeout
        result = []
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f'prometheus exited {self.proc.returncode}')
            result = self.query(promql)
            if ok(result):
                return result
            time.sleep(0.2)
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
