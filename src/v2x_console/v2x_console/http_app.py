"""The console's HTTP side: one page, a JSON API, a server-sent-events stream, actions.

The app knows the node only through three callables and one object: ``snapshot()``
(the core's state as JSON-ready dicts), the Hub (events pushed from the ROS thread),
the ArchiveReader, and ``Actions`` (inject, cancel, request_clip: the node's
publishers and service client). Everything GET is read-only and open (the console binds
to 127.0.0.1 unless told otherwise); every POST needs credentials (401 otherwise, and
nothing changes) and is CSRF-safe: the Authorization header is required (a browser never
adds a bearer token by itself), the custom header ``X-V2X-Console: 1`` is required (a
cross-site form cannot set it), and an Origin, when sent, must be this host.
"""

import asyncio
import json
from pathlib import Path
import time
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from v2x_console.actions import (
    ActionError,
    ClipRequestBody,
    Credentials,
    InjectRequest,
    parse_clip_request,
    parse_inject,
)
from v2x_console.archive import ArchiveReader
from v2x_console.core import Event
from v2x_console.evidence_routes import add_evidence_routes
from v2x_console.page import render_page

STATIC_DIR = Path(__file__).resolve().parent / 'static'
CSRF_HEADER = 'x-v2x-console'
KEEPALIVE_S = 15.0
#: Events a slow client may have waiting; beyond it the client is dropped (its browser
#: reconnects and starts again from a snapshot), so one stuck client costs bounded memory.
MAX_QUEUED = 5000
MAX_BODY_BYTES = 16384


class ActionFailed(Exception):
    """The node could not do an action now (no gateway, no clipper): 503 with the reason."""


class NotCancellable(LookupError):
    """No active alert of this station with that id: 404."""


class Actions(Protocol):
    """What the node does for the actions (called in a worker thread)."""

    def inject(self, request: InjectRequest) -> dict: ...
    def cancel(self, source_id: str, sequence: int) -> dict: ...
    def request_clip(self, request: ClipRequestBody) -> dict: ...


def encode_event(kind: str, data: Any) -> bytes:
    """One server-sent event: ``event: <kind>`` and one line of JSON."""
    body = json.dumps(data, separators=(',', ':'), allow_nan=False)
    return f'event: {kind}\ndata: {body}\n\n'.encode()


class Hub:
    """Fans events out to the live-stream clients; publish() may be called from any thread."""

    def __init__(self, snapshot: Callable[[], dict], max_queued: int = MAX_QUEUED):
        self._snapshot = snapshot
        self._max = max_queued
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue] = set()
        self.dropped_clients = 0
        self.unencodable = 0
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, events: list[Event]) -> None:
        """Queue events for every client (encoded once, here, in the caller's thread)."""
        loop = self._loop
        if not events or loop is None or not self._clients:
            return
        chunks = []
        for e in events:
            try:
                chunks.append(encode_event(e.kind, e.data))
            except (TypeError, ValueError):  # never expected: counted, never raised
                self.unencodable += 1
        if not chunks:
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, chunks)
        except RuntimeError:  # the loop closed: the server is stopping
            pass

    def _fan_out(self, chunks: list[bytes]) -> None:
        for queue in list(self._clients):
            if queue.qsize() + len(chunks) > self._max:
                self._clients.discard(queue)
                self.dropped_clients += 1
                queue.put_nowait(None)
                continue
            for chunk in chunks:
                queue.put_nowait(chunk)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._close_all)
            except RuntimeError:
                pass

    def _close_all(self) -> None:
        for queue in self._clients:
            queue.put_nowait(None)
        self._clients.clear()

    async def stream(self, request: Request):
        """The event stream of one client: a snapshot, then every event, keep-alives."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        # Registered before the snapshot is taken: a change after it is also queued
        # (events carry absolute state, so one already in the snapshot does no harm).
        self._clients.add(queue)
        try:
            yield b'retry: 2000\n\n' + encode_event('snapshot', self._snapshot())
            while not self.closed:
                try:
                    chunk = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b': keep-alive\n\n'
                    continue
                if chunk is None:
                    return
                parts = [chunk]
                while not queue.empty() and len(parts) < 256:  # batch what is waiting
                    more = queue.get_nowait()
                    if more is None:
                        yield b''.join(parts)
                        return
                    parts.append(more)
                yield b''.join(parts)
        finally:
            self._clients.discard(queue)


def _problem(status: int, error: str, field: str, detail: str, **headers) -> JSONResponse:
    return JSONResponse({'error': error, 'field': field, 'detail': detail},
                        status_code=status, headers=headers or None)


def content_security_policy(tile_url: str) -> str:
    """Only this origin (and the tile server, when one is configured)."""
    img = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url.replace('{', '').replace('}', ''))
        if parts.scheme in ('http', 'https') and parts.netloc:
            img += f' {parts.scheme}://{parts.netloc}'
    return (f"default-src 'self'; img-src {img}; media-src 'self'; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


def allowed_hosts(bind: str) -> list[str]:
    """Host header values the app answers: only loopback names when bound to loopback
    (a web page the operator visits cannot read the console through DNS rebinding);
    any when opened to the network (the machine's names and addresses are not known)."""
    if bind in ('127.0.0.1', '::1', 'localhost') or bind.startswith('127.'):
        return ['127.0.0.1', 'localhost', '[::1]', '::1', bind]
    return ['*']


def create_app(snapshot: Callable[[], dict], hub: Hub, archive: ArchiveReader,
               actions: Actions, credentials: Credentials, tile_url: str = '',
               clock: Callable[[], float] = time.time, bind: str = '127.0.0.1') -> FastAPI:
    """The console's ASGI app."""
    app = FastAPI(title='V2X console', version='1.0.0', docs_url=None, redoc_url=None,
                  description='Live alerts, peers, policy state, diagnostics and evidence '
                              'clips of one V2X station; authenticated test actions.')
    page = (STATIC_DIR / 'index.html').read_text(encoding='utf-8')
    csp = content_security_policy(tile_url)
    headers = {'Content-Security-Policy': csp, 'X-Content-Type-Options': 'nosniff',
               'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store'}

    @app.middleware('http')
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(bind))
    app.mount('/static', StaticFiles(directory=STATIC_DIR), name='static')

    @app.get('/', response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """The page, with the current state inline (shown before any stream connects)."""
        return HTMLResponse(render_page(page, snapshot()))

    @app.get('/api/state')
    def state() -> JSONResponse:
        """Everything the page shows, now."""
        return JSONResponse(snapshot())

    @app.get('/api/events')
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: 'snapshot' first, then alert, alert_removed, peers, policy,
        diagnostics, archive, counts as they happen."""
        return StreamingResponse(hub.stream(request), media_type='text/event-stream',
                                 headers={'Cache-Control': 'no-store',
                                          'X-Accel-Buffering': 'no'})

    @app.get('/api/archive')
    def archive_list() -> JSONResponse:
        """The clips of the evidence archive, newest first."""
        return JSONResponse(archive.read())

    @app.get('/api/archive/{stem}/verify')
    async def verify(stem: str) -> JSONResponse:
        """Hash the clip's video now and compare it with its sidecar's sha256."""
        result = await run_in_threadpool(archive.verify, stem)
        if result is None:
            return _problem(404, 'not_found', 'stem', f'no clip {stem!r} in the archive')
        return JSONResponse(result)

    @app.get('/archive/{name}')
    def archive_file(name: str, download: bool = False):
        """A clip's .mp4 (range requests) or .json sidecar, by its listed name."""
        path = archive.file_path(name)
        if path is None:
            return _problem(404, 'not_found', 'name', f'no file {name!r} in the archive')
        media = 'video/mp4' if name.endswith('.mp4') else 'application/json'
        return FileResponse(path, media_type=media,
                            filename=name if download else None,
                            content_disposition_type='attachment' if download else 'inline')

    @app.get('/healthz')
    def healthz() -> dict:
        """Liveness (no credentials needed)."""
        return {'status': 'ok', 'stream_clients': hub.clients, 'actions': credentials.configured}

    def refuse(request: Request) -> JSONResponse | None:
        user = credentials.check(request.headers.get('authorization'))
        if user is None:
            detail = ('a valid "Authorization: Bearer <token>" or Basic header is required'
                      if credentials.configured else
                      'actions are off: the console has no console_token_file or '
                      'console_password_file')
            return _problem(401, 'unauthorized', 'authorization', detail,
                            **{'WWW-Authenticate': 'Bearer'})
        if request.headers.get(CSRF_HEADER) != '1':
            return _problem(403, 'forbidden', CSRF_HEADER,
                            f'the header "{CSRF_HEADER}: 1" is required')
        origin = request.headers.get('origin')
        if origin is not None and urlsplit(origin).netloc != request.headers.get('host'):
            return _problem(403, 'forbidden', 'origin', f'cross-origin request from {origin}')
        return None

    async def body_json(request: Request):
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise ActionError('body', f'more than {MAX_BODY_BYTES} bytes')
        if not body:
            return {}
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ActionError('body', f'not JSON: {exc}') from None

    async def run_action(fn, *args) -> JSONResponse:
        try:
            result = await run_in_threadpool(fn, *args)
        except NotCancellable as exc:
            return _problem(404, 'not_found', 'id', str(exc))
        except ActionFailed as exc:
            return _problem(503, 'unavailable', '', str(exc))
        return JSONResponse(result, status_code=202)

    @app.post('/api/alerts', status_code=202)
    async def inject(request: Request) -> JSONResponse:
        """Publish a test alert on v2x/alert_out (v2x_inject's fields, as JSON)."""
        if (refused := refuse(request)) is not None:
            return refused
        try:
            req = parse_inject(await body_json(request))
        except ActionError as exc:
            return JSONResponse(exc.as_dict(), status_code=422)
        return await run_action(actions.inject, req)

    @app.post('/api/alerts/{source_id}/{sequence}/cancel', status_code=202)
    async def cancel(request: Request, source_id: str, sequence: int) -> JSONResponse:
        """Cancel an active alert this station sent."""
        if (refused := refuse(request)) is not None:
            return refused
        return await run_action(actions.cancel, source_id, sequence)

    @app.post('/api/clips', status_code=202)
    async def request_clip(request: Request) -> JSONResponse:
        """Ask event_clipper (v2x/request_clip) for a clip around t0."""
        if (refused := refuse(request)) is not None:
            return refused
        try:
            req = parse_clip_request(await body_json(request), clock())
        except ActionError as exc:
            return JSONResponse(exc.as_dict(), status_code=422)
        return await run_action(actions.request_clip, req)

    add_evidence_routes(app, archive, refuse,  # legal hold (authenticated) and export
                        lambda r: credentials.check(r.headers.get('authorization')), body_json)
    return app

