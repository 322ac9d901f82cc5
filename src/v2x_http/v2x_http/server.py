"""uvicorn serving an ASGI app on a bound socket, in a supervised thread beside rclpy.

The server holds against slow or idle clients: a request (headers and body) must arrive
within REQUEST_TIMEOUT_S of the connection (or of the previous answer), an idle
keep-alive connection closes after KEEP_ALIVE_S, at most MAX_CONNECTIONS are open at
once (more are closed at once, before they cost a descriptor for long), and uvicorn's
and asyncio's own log lines pass a BudgetFilter.

What the app does is its owner's: event_intake's POST /events, the console's page. This
module knows neither (their parameter names come in as arguments).
"""

import errno
import logging
import socket

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from v2x_common.logbudget import BudgetFilter
from v2x_common.params import ParameterError
from v2x_common.worker import Worker


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


def bind_or_explain(host: str, port: int, host_param: str, port_param: str) -> socket.socket:
    """bind(), with a refusal that names the node's parameter (host_param, port_param),
    the address, the cause and the fix."""
    try:
        return bind(host, port)
    except socket.gaierror as exc:
        raise ParameterError(host_param, f'{host!r} is no address ({exc.strerror})') from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ParameterError(port_param, f'{host}:{port} is already in use by another '
                                 f'program (see `ss -ltnp "sport = :{port}"`); stop it or '
                                 f'choose another {port_param} (0 = any free port)') from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ParameterError(host_param, f'{host} is no address of this host '
                                 '(`ip -br addr` lists them); 127.0.0.1 serves this host '
                                 'only') from None
        if exc.errno == errno.EACCES:
            raise ParameterError(port_param, f'port {port} is below 1024: only root may '
                                 'listen there; choose a port above 1023') from None
        raise ParameterError(port_param, f'cannot listen on {host}:{port}: '
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
LIBRARY_LOG_BUDGET = BudgetFilter('HTTP server', burst=10, window_s=10.0)


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a connection cap."""

    stats: dict[str, int] = {}  # set per server (see HttpServer)

    def connection_made(self, transport) -> None:  # noqa: D102
        super().connection_made(transport)
        self._deadline = None
        if len(self.connections) > MAX_CONNECTIONS:
            self.stats['http_refused'] += 1
            transport.close()
            # Out of the count now, not at connection_lost (the next loop turn): uvicorn's
            # limit_concurrency counts the same set, and a burst of refused connections
            # still in it made it answer 503 to requests of connections it had accepted.
            self.connections.discard(self)
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

    def __init__(self, app, sock: socket.socket, logger=None, on_death=None,
                 name: str = 'http'):
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
        for logger_name in ('uvicorn', 'uvicorn.error', 'asyncio'):
            logging.getLogger(logger_name).addFilter(LIBRARY_LOG_BUDGET)

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
