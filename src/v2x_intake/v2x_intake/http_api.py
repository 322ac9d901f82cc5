"""The HTTP half of event_intake: a FastAPI app and a uvicorn server in its own thread.

POST /events takes one event in the schema of intake_schema (bearer token required
unless the node runs with http_insecure), GET /healthz answers without a token, and
/openapi.json describes both; GET /docs is a plain page made from it here (FastAPI's
Swagger page loads its scripts from a CDN, blank at an offline site). The app only calls
``submit(body, client)``; the node decides what that does.

The server holds against slow or idle clients: a request (headers and body) must arrive
within REQUEST_TIMEOUT_S of the connection (or of the previous answer), an idle
keep-alive connection closes after KEEP_ALIVE_S, at most MAX_CONNECTIONS are open at
once (more are closed at once, before they cost a descriptor for long), and uvicorn's
and asyncio's own log lines pass a LogBudget.
"""

import copy
import errno
import hmac
import html
import json
import logging
import socket
import sqlite3
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
import h11
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from v2x_common.params import ParameterError
from v2x_common.worker import Worker
from v2x_intake.core import MAX_EVENT_BYTES, Outcome
from v2x_intake.logbudget import BudgetFilter
from v2x_intake.schema import EVENT_SCHEMA, BadJson, IntakeError


class Accepted(BaseModel):
    """Answer to a good POST: accepted (published), queued (held) or duplicate."""

    status: str
    key: str


class Problem(BaseModel):
    """Answer to a bad POST: what kind of problem and which field."""

    error: str
    field: str
    detail: str


_BEARER = HTTPBearer(auto_error=False, description='the intake token (token_file or '
                                                   '$V2X_INTAKE_TOKEN)')


def _problem(status: int, error: str, field: str, detail: str, **headers) -> JSONResponse:
    return JSONResponse({'error': error, 'field': field, 'detail': detail}, status_code=status,
                        headers=headers or None)


def _openapi_body() -> dict[str, Any]:
    schema = copy.deepcopy(EVENT_SCHEMA)
    schema.pop('$schema', None)
    return {'requestBody': {'required': True, 'content': {'application/json': {
        'schema': schema,
        'example': {'ts': 1737930000.0, 'type': 'collision', 'severity': 'high',
                    'lat': 37.12, 'lon': 127.12, 'road': 'A', 'distance_m': 500,
                    'clip_hint': True, 'ttl_s': 600, 'event_id': 'cam7-000123'}}}}}


def create_app(submit: Callable[[bytes, str], Outcome], token: str | None,
               health: Callable[[], dict[str, Any]]) -> FastAPI:
    """The intake's ASGI app; submit runs in a worker thread, never on the event loop."""
    app = FastAPI(title='V2X event intake', version='1.0.0',
                  description='Hand road hazard events to the RSU; each becomes one alert '
                              'on /v2x/alert_out.', docs_url=None, redoc_url=None)
    expected = token.encode('utf-8') if token else None

    def authorised(credentials: HTTPAuthorizationCredentials | None) -> bool:
        if expected is None:
            return True
        return credentials is not None and hmac.compare_digest(
            credentials.credentials.encode('utf-8', 'surrogateescape'), expected)

    @app.post('/events', status_code=202, response_model=Accepted,
              openapi_extra=_openapi_body(),
              responses={400: {'model': Problem, 'description': 'not one JSON document'},
                         401: {'model': Problem, 'description': 'no or wrong bearer token'},
                         413: {'model': Problem, 'description': 'body too large'},
                         422: {'model': Problem, 'description': 'a field is missing, of the '
                               'wrong type or value, or the event expired'},
                         503: {'model': Problem, 'description': 'cannot record events now'}})
    async def post_event(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)):
        """Submit one event; the same event_id is published once."""
        if not authorised(credentials):
            return _problem(401, 'unauthorized', 'authorization',
                            'a valid "Authorization: Bearer <token>" header is required',
                            **{'WWW-Authenticate': 'Bearer'})
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_EVENT_BYTES:
                    return _problem(413, 'too_large', '', f'more than {MAX_EVENT_BYTES} bytes')
        except ClientDisconnect:  # gone, or closed by the request timeout: nobody to answer
            return _problem(400, 'disconnected', '', 'the client went away mid-body')
        client = request.client.host if request.client else ''
        try:
            outcome = await run_in_threadpool(submit, bytes(body), client)
        except BadJson as error:
            return JSONResponse(error.as_dict(), status_code=400)
        except IntakeError as error:
            return JSONResponse(error.as_dict(), status_code=422)
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            return _problem(503, 'unavailable', '', f'cannot record the event: {exc}')
        return JSONResponse({'status': outcome.status, 'key': outcome.key}, status_code=202)

    @app.get('/healthz')
    def healthz() -> dict[str, Any]:
        """Liveness and counters (no token needed)."""
        return {'status': 'ok', **health()}

    @app.get('/docs', include_in_schema=False)
    def docs() -> HTMLResponse:
        """The API as a self-contained page (no scripts, nothing fetched from elsewhere)."""
        return HTMLResponse(docs_page(app.openapi()))

    return app


def docs_page(spec: dict[str, Any]) -> str:
    """A plain HTML page of an OpenAPI document: each operation, its answers, the example."""
    esc = html.escape
    info = spec['info']
    parts = ['<!doctype html><html><head><meta charset="utf-8">'
             f'<title>{esc(info["title"])}</title></head><body>',
             f'<h1>{esc(info["title"])} {esc(info["version"])}</h1>',
             f'<p>{esc(info.get("description", ""))}</p>',
             '<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a> '
             '(load it into any OpenAPI viewer).</p>']
    for path, operations in spec.get('paths', {}).items():
        for method, op in operations.items():
            parts.append(f'<h2>{esc(method.upper())} {esc(path)}</h2>'
                         f'<p>{esc(op.get("summary", ""))}. '
                         f'{esc(op.get("description", ""))}</p><ul>')
            for code, answer in op.get('responses', {}).items():
                parts.append(f'<li>{esc(code)}: {esc(answer.get("description", ""))}</li>')
            parts.append('</ul>')
            body = op.get('requestBody', {}).get('content', {}).get('application/json', {})
            if 'example' in body:
                parts.append('<pre>' + esc(json.dumps(body['example'], indent=2)) + '</pre>')
    parts.append('</body></html>')
    return '\n'.join(parts)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 = any free port); raises OSError at start-up."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted connections only then;
    # without it keep-alive answers wait ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind_or_explain(host: str, port: int) -> socket.socket:
    """bind(), with a refusal that names the address, the cause and the fix."""
    try:
        return bind(host, port)
    except socket.gaierror as exc:
        raise ParameterError('http_host', f'{host!r} is no address ({exc.strerror})') from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ParameterError('http_port', f'{host}:{port} is already in use by another '
                                f'program (see `ss -ltnp "sport = :{port}"`); stop it or '
                                'choose another http_port (0 = any free port)') from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ParameterError('http_host', f'{host} is no address of this host '
                                '(`ip -br addr` lists them); 127.0.0.1 serves this host '
                                'only') from None
        if exc.errno == errno.EACCES:
            raise ParameterError('http_port', f'port {port} is below 1024: only root may '
                                'listen there; choose a port above 1023') from None
        raise ParameterError('http_port', f'cannot listen on {host}:{port}: '
                            f'{exc.strerror}') from None


#: Seconds a client has to send a whole request (headers and body) after connecting or
#: after its previous answer; a slow sender (slowloris) is disconnected then.
REQUEST_TIMEOUT_S = 10.0
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 5.0
#: Connections open at once; more are closed as soon as they are accepted. Keep it well
#: below the descriptor limit (the units set LimitNOFILE=65536; a shell's is often 1024).
MAX_CONNECTIONS = 256
#: uvicorn's and asyncio's own lines (one per bad request, per refused connection...).
_LIBRARY_LOG_BUDGET = BudgetFilter('HTTP server', burst=10, window_s=10.0)


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a connection cap."""

    stats: dict[str, int] = {}  # set per server (see HttpServer)

    def connection_made(self, transport) -> None:  # noqa: D102
        super().connection_made(transport)
        self._deadline = None
        if len(self.connections) > MAX_CONNECTIONS:
            self.stats['http_refused'] += 1
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(REQUEST_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if getattr(self, '_deadline', None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state is not h11.DONE and not self.transport.is_closing():
            self.stats['http_timeouts'] += 1
            self.transport.close()

    def handle_events(self) -> None:  # noqa: D102
        super().handle_events()
        if self.conn.their_state is h11.DONE:  # the whole request is in: the app's turn
            self._disarm()

    def on_response_complete(self) -> None:  # noqa: D102
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is not h11.DONE:
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc) -> None:  # noqa: D102
        self._disarm()
        super().connection_lost(exc)


class HttpServer:
    """uvicorn serving an app on a bound socket, in a thread beside the rclpy executor."""

    def __init__(self, app: FastAPI, sock: socket.socket, logger=None, on_death=None,
                 name: str = 'event_intake_http'):
        self._sock = sock
        self.port = sock.getsockname()[1]
        #: connections closed for the cap, requests cut for slowness
        self.stats = {'http_refused': 0, 'http_timeouts': 0}
        protocol = type('GuardedH11', (_GuardedH11,), {'stats': self.stats})
        config = uvicorn.Config(app, log_level='warning', lifespan='off', access_log=False,
                                timeout_graceful_shutdown=2, http=protocol,
                                timeout_keep_alive=KEEP_ALIVE_S,
                                limit_concurrency=MAX_CONNECTIONS + 1)
        self._server = uvicorn.Server(config)
        # Supervised: uvicorn ending before stop() (it raises SystemExit on a start-up
        # failure) is a dead worker, reported, and on_death decides (the node exits 1).
        self.worker = Worker(name, lambda: self._server.run(sockets=[sock]),
                             logger=logger, on_death=on_death, wake=self._exit)
        for name in ('uvicorn', 'uvicorn.error', 'asyncio'):
            logging.getLogger(name).addFilter(_LIBRARY_LOG_BUDGET)

    def start(self) -> None:
        """Serve in the background."""
        self.worker.start()

    @property
    def started(self) -> bool:
        """True once uvicorn accepts connections."""
        return self._server.started

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit, wait for it, close the socket."""
        self.worker.stop(timeout)
        self._sock.close()

    def _exit(self) -> None:
        self._server.should_exit = True
