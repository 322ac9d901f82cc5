"""The shared HTTP server against slow, idle and too many clients, without ROS.

The real uvicorn server on a real socket, with the limits made small so that each case
takes well under a second; the app only records what reached it.
"""

import logging
import socket
import time

from fastapi import FastAPI, Request
import httpx
import pytest

from v2x_common.params import ParameterError
from v2x_http import server as http_server
from v2x_http.server import HttpServer, bind, bind_or_explain


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
    app = FastAPI()

    @app.post('/events', status_code=202)
    async def post(request: Request):
        submitted.append(await request.body())
        return {'status': 'accepted'}

    sock = bind('127.0.0.1', 0)
    srv = HttpServer(app, sock)
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
    monkeypatch.setattr(http_server, 'REQUEST_TIMEOUT_S', 0.3)
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
    monkeypatch.setattr(http_server, 'MAX_CONNECTIONS', 4)
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


def test_library_log_lines_are_budgeted(server, monkeypatch):
    """60 malformed requests (uvicorn logs a warning for each) give at most the budget's
    lines in one window; the rest are counted."""
    budget = http_server.LIBRARY_LOG_BUDGET.budget
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


def test_refusal_names_the_callers_parameters():
    """bind_or_explain names the parameters its caller passes (the console's, not the
    intake's), with the address and the fix."""
    holder = socket.socket()
    holder.bind(('127.0.0.1', 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ParameterError) as info:
            bind_or_explain('127.0.0.1', port, 'console_bind', 'console_port')
    finally:
        holder.close()
    assert info.value.name == 'console_port'
    assert 'choose another console_port' in str(info.value)
    with pytest.raises(ParameterError) as info:
        bind_or_explain('no such host.invalid', 0, 'console_bind', 'console_port')
    assert info.value.name == 'console_bind'
