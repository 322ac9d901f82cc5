"""The HTTP half of event_intake: a FastAPI app and a uvicorn server in its own thread.

POST /events takes one event in the schema of intake_schema (bearer token required
unless the node runs with http_insecure), GET /healthz answers without a token, and
/openapi.json describes both. The app only calls ``submit(body, client)``; the node
decides what that does.
"""

import copy
import hmac
import socket
import sqlite3
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
import uvicorn

from v2x_common.worker import Worker
from v2x_intake.core import MAX_EVENT_BYTES, Outcome
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
                              'on /v2x/alert_out.')
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
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_EVENT_BYTES:
                return _problem(413, 'too_large', '', f'more than {MAX_EVENT_BYTES} bytes')
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

    return app


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


class HttpServer:
    """uvicorn serving an app on a bound socket, in a thread beside the rclpy executor."""

    def __init__(self, app: FastAPI, sock: socket.socket, logger=None, on_death=None):
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level='warning', lifespan='off', access_log=False,
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        # Supervised: uvicorn ending before stop() (it raises SystemExit on a start-up
        # failure) is a dead worker, reported, and on_death decides (the node exits 1).
        self.worker = Worker('event_intake_http', lambda: self._server.run(sockets=[sock]),
                             logger=logger, on_death=on_death, wake=self._exit)

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
