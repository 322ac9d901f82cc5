"""The console's HTTP side: one page, a JSON API, a server-sent-events stream, actions.

The app knows the node only through three callables and one object: ``snapshot()``
(the core's state as JSON-ready dicts), the Hub (events pushed from the ROS thread),
the ArchiveReader, and ``Actions`` (inject, cancel, request_clip: the node's
publishers and service client). Everything GET is read-only and open (the console binds
to 127.0.0.1 unless told otherwise); every POST needs credentials (401 otherwise, and
nothing changes) and is CSRF-safe: the Authorization header is required (a browser never
adds a bearer token by itself), the custom header ``X-V2X-Console: 1`` is required (a
cross-site form cannot set it), and an Origin, when sent, must be this host.

Resources are bounded per client address, so that nobody without credentials can starve
the operator's page: live streams (each holds a connection for as long as it lasts) are
at most MAX_STREAMS_PER_CLIENT per address and MAX_STREAMS in all, well below the
server's connection cap; when all are taken, a newcomer's stream replaces the oldest of
the address holding the most (among those, of the one that opened the most streams
lately), as long as that address holds more than the newcomer's. A refused stream is
answered 429 and its connection closed. A stream whose client stops reading (a write
blocked for STALL_S) is closed. A video verification (it hashes a whole clip) runs one
at a time per client address and MAX_VERIFICATIONS at once.

Host names (DNS rebinding): a request must name this console by an IP address, by a
loopback name, or (when bound beyond loopback) by this machine's name or one of
``allowed_hosts`` (console_allowed_hosts); any other Host header is refused (400).
"""

import asyncio
from contextlib import aclosing
import ipaddress
import json
import math
from pathlib import Path
import re
import socket
import time
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from v2x_common.addresses import is_loopback
from v2x_console.actions import (
    ActionError,
    ClipRequestBody,
    Credentials,
    InjectRequest,
    parse_clip_request,
    parse_held_request,
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
#: Live streams at once, in all and per client address. The HTTP server closes
#: connections beyond 256 (v2x_intake.http_api.MAX_CONNECTIONS): streams never hold more
#: than a quarter of them, so pages, API calls and actions always find a slot.
MAX_STREAMS = 64
MAX_STREAMS_PER_CLIENT = 4
#: Seconds a write to a stream may stay blocked (the client reads nothing) before the
#: stream is closed; keep-alives every KEEPALIVE_S make an idle reader's block show.
STALL_S = 30.0
#: How fast a client's count of streams opened lately decays (seconds), and how many
#: addresses are tracked at most.
CHURN_S = 60.0
MAX_TRACKED = 4096
#: Video verifications hashing at once (each also one at a time per client address).
MAX_VERIFICATIONS = 2
RETRY_AFTER_S = 10
#: console_allowed_hosts entries: host names, or *.domain for every name under it.
_HOST_NAME = re.compile(r'(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*'
                        r'[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?', re.IGNORECASE)


class ActionFailed(Exception):
    """The node could not do an action now (no gateway, no clipper): 503 with the reason."""


class NotCancellable(LookupError):
    """No active alert of this station with that id: 404."""


class NotHeld(LookupError):
    """No event held for confirmation with that id (or decided already): 404."""


class Actions(Protocol):
    """What the node does for the actions (called in a worker thread)."""

    def inject(self, request: InjectRequest) -> dict: ...
    def cancel(self, source_id: str, sequence: int) -> dict: ...
    def request_clip(self, request: ClipRequestBody) -> dict: ...
    def resolve_held(self, hold_id: str, confirm: bool, by: str) -> dict: ...


class StreamRefused(Exception):
    """No live stream for this client now (429): the detail says which limit."""


def encode_event(kind: str, data: Any) -> bytes:
    """One server-sent event: ``event: <kind>`` and one line of JSON."""
    body = json.dumps(data, separators=(',', ':'), allow_nan=False)
    return f'event: {kind}\ndata: {body}\n\n'.encode()


class Hub:
    """Fans events out to the live-stream clients; publish() may be called from any thread,
    open(), release() and events() from the server's event loop only."""

    def __init__(self, snapshot: Callable[[], dict], max_queued: int = MAX_QUEUED,
                 max_streams: int = MAX_STREAMS,
                 per_client: int = MAX_STREAMS_PER_CLIENT):
        self._snapshot = snapshot
        self._max = max_queued
        self._max_streams = max_streams
        self._per_client = per_client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[asyncio.Queue, str] = {}  # queue -> client address, oldest first
        self._churn: dict[str, tuple[float, float]] = {}  # address -> (opens score, at)
        self.dropped_clients = 0
        self.unencodable = 0
        self.refused_streams = 0
        self.replaced_streams = 0
        self.stalled_streams = 0
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def open(self, address: str, now: float | None = None) -> asyncio.Queue:
        """Register a stream of a client address (counted from now on); raises
        StreamRefused when its address holds its share, or every stream is taken by
        addresses holding no more than it does. When all are taken, the newcomer replaces
        the oldest stream of the address holding the most; among those, of the one that
        opened the most streams lately (a client that keeps reconnecting loses first,
        an operator's long-lived stream last)."""
        self._loop = asyncio.get_running_loop()
        churn = self._opened(address, time.monotonic() if now is None else now)
        held: dict[str, int] = {}
        for owner in self._clients.values():
            held[owner] = held.get(owner, 0) + 1
        mine = held.get(address, 0)
        if mine >= self._per_client:
            self.refused_streams += 1
            raise StreamRefused(f'{address} holds {mine} live streams already (at most '
                                f'{self._per_client} per client address)')
        if len(self._clients) >= self._max_streams:
            victim = max(held, key=lambda owner: (held[owner], churn(owner)))
            if held[victim] <= mine:
                self.refused_streams += 1
                raise StreamRefused(f'all {self._max_streams} live streams are taken')
            oldest = next(q for q, owner in self._clients.items() if owner == victim)
            self._end(oldest)
            self.replaced_streams += 1
        queue: asyncio.Queue = asyncio.Queue()
        self._clients[queue] = address
        return queue

    def _opened(self, address: str, now: float) -> Callable[[str], float]:
        """Count one stream opened by address (a score decaying with CHURN_S); returns
        the score of any address at now."""
        def score(owner: str) -> float:
            value, at = self._churn.get(owner, (0.0, now))
            return value * math.exp(-(now - at) / CHURN_S)
        if len(self._churn) >= MAX_TRACKED and address not in self._churn:
            for old in [a for a in self._churn if score(a) < 0.5] or list(self._churn):
                del self._churn[old]
        self._churn[address] = (score(address) + 1.0, now)
        return score

    def release(self, queue: asyncio.Queue) -> None:
        """The stream ended (any way): its slot is free."""
        self._clients.pop(queue, None)

    def _end(self, queue: asyncio.Queue) -> None:
        self._clients.pop(queue, None)
        queue.put_nowait(None)

    def stats(self) -> dict[str, int]:
        """Stream counters for /healthz and the diagnostics."""
        return {'stream_clients': self.clients, 'stream_clients_dropped': self.dropped_clients,
                'streams_refused': self.refused_streams,
                'streams_replaced': self.replaced_streams,
                'streams_stalled': self.stalled_streams}

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
                self._end(queue)
                self.dropped_clients += 1
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
        for queue in list(self._clients):
            self._end(queue)

    async def events(self, queue: asyncio.Queue):
        """The chunks of one stream (opened with open()): a snapshot, then every event,
        keep-alives; it ends when None is queued (closed, replaced, dropped, gone)."""
        # Registered before the snapshot is taken: a change after it is also queued
        # (events carry absolute state, so one already in the snapshot does no harm).
        try:
            yield b'retry: 2000\n\n' + encode_event('snapshot', self._snapshot())
            while not self.closed:
                try:
                    chunk = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
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
            self.release(queue)


class _Stalled(Exception):
    """A write to a stream stayed blocked for STALL_S."""


class EventStream(Response):
    """The response of one live stream (an ASGI app of its own, unlike StreamingResponse):
    every write is bounded by STALL_S, the client's disconnect ends it at once, and its
    slot in the Hub is freed whatever happens, even when it never started."""

    def __init__(self, hub: Hub, queue: asyncio.Queue, stall_s: float = STALL_S):
        # not Response.__init__: that would announce a content-length of 0
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b'content-type', b'text/event-stream; charset=utf-8'),
                            (b'cache-control', b'no-store'), (b'x-accel-buffering', b'no')]
        self.hub, self.queue, self.stall_s = hub, queue, stall_s

    async def __call__(self, scope, receive, send) -> None:  # noqa: D102
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await self._send(send, {'type': 'http.response.start',
                                    'status': self.status_code, 'headers': self.raw_headers})
            async with aclosing(self.hub.events(self.queue)) as chunks:
                async for chunk in chunks:
                    await self._send(send, {'type': 'http.response.body', 'body': chunk,
                                            'more_body': True})
            await self._send(send, {'type': 'http.response.body', 'body': b'',
                                    'more_body': False})
        except _Stalled:
            # Returning with the response unfinished: the server closes the connection.
            self.hub.stalled_streams += 1
        finally:
            watcher.cancel()
            self.hub.release(self.queue)

    async def _send(self, send, message: dict) -> None:
        try:
            await asyncio.wait_for(send(message), self.stall_s)
        except asyncio.TimeoutError:
            raise _Stalled from None

    async def _watch(self, receive) -> None:
        while (await receive())['type'] != 'http.disconnect':
            pass
        self.queue.put_nowait(None)  # gone: end the stream now, not at the next write


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


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """console_allowed_hosts: comma-separated host names or *.domain; raises ValueError
    naming the first entry that is neither."""
    names = tuple(n.strip().lower().rstrip('.') for n in text.split(',') if n.strip())
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise ValueError(f'{name!r} is not a host name or *.domain')
    return names


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names (IP addresses are always fine) a request may give in its Host
    header: loopback names, this machine's names when bound beyond loopback, and extra.
    A page of another site that the operator visits cannot reach the console through
    DNS rebinding: its requests carry that site's name."""
    names = {'localhost', *extra}
    if not is_loopback(bind):  # its name and mDNS name (no DNS lookup: a site may have none)
        host = socket.gethostname().lower()
        names |= {host, f'{host}.local'}
    return frozenset(n.rstrip('.') for n in names if n)


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """Whether a Host header ('name[:port]', '[v6]:port', an IPv4) names this console."""
    if host.startswith('['):
        literal, sep, _ = host[1:].partition(']')
        name = literal if sep else ''
    else:
        name, _, port = host.rpartition(':') if host.count(':') == 1 else (host, '', '')
        name = name if port.isdigit() or not port else ''
    name = name.lower().rstrip('.')
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True  # an address: no DNS name to rebind
    except ValueError:
        pass
    return name in names or any(n.startswith('*.') and name.endswith(n[1:]) for n in names)


class GuardHeaders:
    """ASGI middleware: refuses (400) a request whose Host header names no allowed host,
    and adds the security headers to every response (a pure ASGI wrapper, so it adds no
    buffering to the live streams)."""

    def __init__(self, app, names: frozenset[str], headers: dict[str, str]):
        self.app = app
        self.names = names
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope, receive, send) -> None:  # noqa: D102
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        host = dict(scope['headers']).get(b'host', b'').decode('latin-1')
        if not host_allowed(host, self.names):
            response = Response('Invalid host header', status_code=400,
                                media_type='text/plain')
            return await response(scope, receive, self._with_headers(send))
        return await self.app(scope, receive, self._with_headers(send))

    def _with_headers(self, send):
        async def send_with_headers(message) -> None:
            if message['type'] == 'http.response.start':
                present = {k.lower() for k, _ in message.get('headers', [])}
                message['headers'] = list(message.get('headers', [])) + [
                    (k, v) for k, v in self.headers if k not in present]
            await send(message)
        return send_with_headers


def client_address(request: Request) -> str:
    """The peer's address (one per client for the stream and verification limits)."""
    return request.client.host if request.client else ''


def create_app(snapshot: Callable[[], dict], hub: Hub, archive: ArchiveReader,
               actions: Actions, credentials: Credentials, tile_url: str = '',
               clock: Callable[[], float] = time.time, bind: str = '127.0.0.1',
               extra_hosts: Iterable[str] = (),
               held_jpeg: Callable[[str], bytes | None] = lambda _id: None,
               metrics: Callable[[], tuple[bytes, str]] | None = None) -> FastAPI:
    """The console's ASGI app (extra_hosts: console_allowed_hosts; held_jpeg: the snapshot
    of an event held for confirmation, by id; metrics: the Prometheus text of this host,
    docs/metrics.md)."""
    app = FastAPI(title='V2X console', version='1.0.0', docs_url=None, redoc_url=None,
                  description='Live alerts, peers, policy state, diagnostics and evidence '
                              'clips of one V2X station; authenticated test actions.')
    page = (STATIC_DIR / 'index.html').read_text(encoding='utf-8')
    csp = content_security_policy(tile_url)
    headers = {'Content-Security-Policy': csp, 'X-Content-Type-Options': 'nosniff',
               'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store'}

    app.add_middleware(GuardHeaders, names=allowed_hosts(bind, extra_hosts), headers=headers)
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
    async def events(request: Request) -> Response:
        """Server-sent events: 'snapshot' first, then alert, alert_removed, peers, policy,
        diagnostics, archive, counts as they happen. A few per client address (429 and
        the connection closed beyond them)."""
        try:
            queue = hub.open(client_address(request))
        except StreamRefused as exc:
            return _problem(429, 'too_many_streams', 'client', str(exc),
                            **{'Retry-After': str(RETRY_AFTER_S), 'Connection': 'close'})
        return EventStream(hub, queue)

    @app.get('/api/archive')
    def archive_list() -> JSONResponse:
        """The clips of the evidence archive, newest first."""
        return JSONResponse(archive.read())

    verifying: set[str] = set()  # client addresses hashing now (the event loop's only)

    @app.get('/api/archive/{stem}/verify')
    async def verify(stem: str, request: Request) -> JSONResponse:
        """Hash the clip's video now and compare it with its sidecar's sha256 (one at a
        time per client address, MAX_VERIFICATIONS at once: 429 beyond)."""
        address = client_address(request)
        if address in verifying or len(verifying) >= MAX_VERIFICATIONS:
            busy = ('a verification of yours is running' if address in verifying else
                    f'{MAX_VERIFICATIONS} verifications are running')
            return _problem(429, 'busy', 'stem', f'{busy}: try again when it is done',
                            **{'Retry-After': '2'})
        verifying.add(address)
        try:
            result = await run_in_threadpool(archive.verify, stem)
        finally:
            verifying.discard(address)
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

    open_metrics = is_loopback(bind)

    @app.get('/metrics')
    def metrics_text(request: Request) -> Response:
        """This host's metrics in the Prometheus text format: open on a loopback console,
        else only with the console's credentials (they show peer pseudonyms)."""
        if metrics is None:
            return _problem(404, 'not_found', 'path', 'no metrics in this console')
        if not open_metrics and credentials.check(request.headers.get('authorization')) is None:
            return _problem(401, 'unauthorized', 'authorization', 'this console is not on '
                            'loopback: /metrics needs its token or a password',
                            **{'WWW-Authenticate': 'Bearer'})
        body, content_type = metrics()
        return Response(body, media_type=content_type)

    @app.get('/healthz')
    def healthz() -> dict:
        """Liveness (no credentials needed)."""
        return {'status': 'ok', **hub.stats(), 'actions': credentials.configured}

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
        except (NotCancellable, NotHeld) as exc:
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

    @app.get('/api/held/snapshot.jpg')
    def held_snapshot(id: str = '') -> Response:  # noqa: A002 -- the API's name
        """The frame (boxes drawn) of an event held for confirmation, while it waits."""
        jpeg = held_jpeg(id)
        if jpeg is None:
            return _problem(404, 'not_found', 'id', f'no held event {id!r} with a snapshot')
        return Response(jpeg, media_type='image/jpeg')

    async def resolve(request: Request, confirm: bool) -> JSONResponse:
        if (refused := refuse(request)) is not None:
            return refused
        by = credentials.check(request.headers.get('authorization')) or ''
        try:
            hold_id = parse_held_request(await body_json(request))
        except ActionError as exc:
            return JSONResponse(exc.as_dict(), status_code=422)
        return await run_action(actions.resolve_held, hold_id, confirm, by)

    @app.post('/api/held/confirm', status_code=202)
    async def confirm_held(request: Request) -> JSONResponse:
        """Confirm an event the detector holds ({"id": ...}): it is broadcast at once."""
        return await resolve(request, True)

    @app.post('/api/held/dismiss', status_code=202)
    async def dismiss_held(request: Request) -> JSONResponse:
        """Dismiss an event the detector holds: dropped, its frame kept as a negative."""
        return await resolve(request, False)

    add_evidence_routes(app, archive, refuse,  # legal hold (authenticated) and export
                        lambda r: credentials.check(r.headers.get('authorization')), body_json)
    return app

