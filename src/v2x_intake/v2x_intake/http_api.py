"""The HTTP half of event_intake: its FastAPI app (served by v2x_http's HttpServer).

POST /events takes one event in the schema of intake_schema (bearer token required
unless the node runs with http_insecure), GET /healthz answers without a token, and
/openapi.json describes both; GET /docs is a plain page made from it here (FastAPI's
Swagger page loads its scripts from a CDN, blank at an offline site). The app only calls
``submit(body, client)``; the node decides what that does.

The server (v2x_http.server) holds against slow, idle and too many clients; its limits
are documented there.
"""

import copy
import hmac
import html
import json
import sqlite3
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

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
