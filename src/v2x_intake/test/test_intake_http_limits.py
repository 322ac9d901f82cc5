"""The intake's HTTP server against slow, idle and too many clients, without ROS.

The real uvicorn server on a real socket, with the limits made small so that each case
takes well under a second; the app's submit only records what reached it.
"""

import logging
import socket
import time

import httpx
import pytest

from v2x_intake import http_api
from v2x_intake.core import EventPublished
from v2x_intake.http_api import HttpServer, bind, create_app


def _wait(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope='module')
def server():
    """One server for the module; limits are patched per test (read when used)."""
    submitted = []

    def submit(body, client):
        submitted.append(body)
        return EventPublished('id:x')

    sock = bind('127.0.0.1', 0)
    srv = HttpServer(create_app(submit, None, lambda: {}), sock)
    srv.start()
    assert _wait(lambda: srv.started)
    srv.submitted = submitted
    yield srv
    srv.stop()


def _connect(srv) -> socket.socket:
    conn = socket.create_connection(('127.0.0.1', srv.port), timeout=20)
    return conn


def _closed_by_server(conn: socket.socket) -> bool:
    """True when the server closed the connection (recv gives EOF or a reset)."""
    try:
        while conn.recv(4096):
            pass  # an answer (408/400) may come first; EOF must follow
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize('sent', [
    b'POST /events HTTP/1.1\r\nHost: x\r\n',  # headers never finished (slowloris)
    b'POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"ts": 1',  # body cut
    b'',  # connected, said nothing
])
def test_slow_request_is_cut_at_the_deadline(server, monkeypatch, sent):
    """A request not complete within REQUEST_TIMEOUT_S is disconnected and counted; the
    app never sees it."""
    monkeypatch.setattr(http_api, 'REQUEST_TIMEOUT_S', 0.3)
    before = server.stats['http_timeouts']
    conn = _connect(server)
    try:
        conn.sendall(sent)
        assert _closed_by_server(conn)
    finally:
        conn.close()
    assert server.stats['http_timeouts'] == before + 1
    assert server.submitted == []


def test_connections_over_the_cap_are_closed_at_once(server, monkeypatch):
    """With MAX_CONNECTIONS open, one more is closed at once (and counted); when they go,
    requests are served again."""
    monkeypatch.setattr(http_api, 'MAX_CONNECTIONS', 4)
    held = [_connect(server) for _ in range(4)]
    try:
        assert _wait(lambda: len(server._server.server_state.connections) == 4)
        extra = _connect(server)
        assert _closed_by_server(extra)
        extra.close()
        assert server.stats['http_refused'] >= 1
    finally:
        for conn in held:
            conn.close()
    assert _wait(lambda: not server._server.server_state.connections)
    answer = httpx.post(f'http://127.0.0.1:{server.port}/events', content=b'{}', timeout=10)
    assert answer.status_code == 202


def test_docs_page_is_self_contained(server):
    """/docs renders without anything from the network (FastAPI's page needs a CDN) and
    points to /openapi.json."""
    page = httpx.get(f'http://127.0.0.1:{server.port}/docs', timeout=10)
    assert page.status_code == 200 and page.headers['content-type'].startswith('text/html')
    assert '/openapi.json' in page.text and 'POST /events' in page.text
    assert 'http://' not in page.text and 'https://' not in page.text
    assert '<script' not in page.text
    assert httpx.get(f'http://127.0.0.1:{server.port}/redoc', timeout=10).status_code == 404


def test_library_log_lines_are_budgeted(server, monkeypatch):
    """60 malformed requests (uvicorn logs a warning for each) give at most the budget's
    lines in one window; the rest are counted."""
    budget = http_api._LIBRARY_LOG_BUDGET.budget
    monkeypatch.setattr(budget, 'window_s', 3600.0)  # one window, however slow the machine
    before = budget.suppressed_total
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger('uvicorn.error')
    logger.addHandler(handler)
    try:
        for _ in range(60):
            conn = _connect(server)
            conn.sendall(b'NOT HTTP AT ALL\r\n\r\n')
            _closed_by_server(conn)
            conn.close()
    finally:
        logger.removeHandler(handler)
    invalid = [line for line in lines if 'Invalid HTTP request' in line]
    assert len(invalid) <= budget.burst
    assert budget.suppressed_total - before >= 60 - budget.burst
