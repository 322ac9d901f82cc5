"""v2x_metrics_exporter: one host's Prometheus metrics, for hosts without the console.

Subscribes to what the host's nodes publish (see ``feed``) and serves the text format at
``GET /metrics`` on ``metrics_bind:metrics_port`` (default 127.0.0.1:9521, loopback only:
the metrics show peer pseudonyms). Another address needs ``metrics_token_file`` (a bearer
token, the same rules as the console's token file) and answers only the Host names in
``metrics_allowed_hosts`` (DNS rebinding). The console serves the same at its own
``/metrics``; run this where the console is off (a light vehicle).
"""

import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket
import threading

from rclpy.node import Node

from v2x_common.addresses import is_loopback
from v2x_common.node_main import run_node
from v2x_common.params import Param, ParameterError, declare_parameters, in_range, not_empty
from v2x_metrics.book import MetricsBook
from v2x_metrics.broker_sys import BrokerSysLink
from v2x_metrics.exposition import Exposition
from v2x_metrics.feed import MetricsFeed
from v2x_protocol.io.keys import KeyConfigError, read_private_lines

NODE_NAME = 'v2x_metrics_exporter'
DEFAULT_PORT = 9521

PARAMETERS = (
    Param('station_label', '', "the 'station' label of every metric ('' = the host name)"),
    Param('metrics_bind', '127.0.0.1', 'address /metrics listens on (loopback by default; '
          'another address needs metrics_token_file)', not_empty),
    Param('metrics_port', DEFAULT_PORT, 'TCP port of /metrics (0 = any free port)',
          in_range(0, 65535)),
    Param('metrics_token_file', '', "file whose first line is the bearer token a scraper "
          "must send ('' = none: loopback only)"),
    Param('metrics_allowed_hosts', [''], 'Host header names answered besides loopback '
          "names (a non-loopback bind; '' = the bind address only)"),
    Param('cmd_vel', True, 'count the commands on cmd_vel (a vehicle)'),
    Param('broker_sys_url', '', "also export the MQTT broker's $SYS figures: "
          "mqtt://host[:port] or mqtts://host[:port] ('' = off)"),
    Param('broker_sys_username', '', "the broker user allowed to read $SYS/# ('' = "
          'anonymous; deploy/mosquitto/acl.example)'),
    Param('broker_sys_password_file', '', "file whose first line is that user's password "
          "(mode 600; '' = none)"),
    Param('broker_sys_ca_file', '', "CA of an mqtts:// broker ('' = the system's)"),
)


def read_secret_line(path: str, name: str) -> str:
    """The first line of a private file (mode 600); ParameterError names the parameter."""
    try:
        lines = read_private_lines(path)
    except KeyConfigError as exc:
        raise ParameterError(name, str(exc)) from None
    return lines[0].strip().decode('utf-8', 'replace') if lines else ''


def read_token(path: str) -> bytes:
    """The first line of a private token file; ParameterError names the parameter."""
    token = read_secret_line(path, 'metrics_token_file').encode()
    if len(token) < 16:
        raise ParameterError('metrics_token_file', 'the token must be at least 16 '
                             'characters (make one: openssl rand -hex 24)')
    return token


def host_names(bind: str, extra) -> set[str]:
    """The Host header names answered: loopback names, the bind address, ``extra``."""
    names = {'127.0.0.1', 'localhost', '[::1]', bind}
    names.update(h.strip().lower() for h in extra if h.strip())
    return names


def make_handler(render, token: bytes, hosts: set[str]):
    """The request handler: GET /metrics, with the Host and token checks."""

    class Handler(BaseHTTPRequestHandler):
        server_version = 'v2x_metrics'

        def do_GET(self):  # noqa: N802 (http.server's name)
            host = (self.headers.get('Host') or '').lower()
            name = host.rsplit(':', 1)[0] if not host.endswith(']') else host
            if name not in hosts:
                return self._reply(400, b'invalid host header\n')
            if self.path.split('?', 1)[0] != '/metrics':
                return self._reply(404, b'only /metrics is served here\n')
            if token:
                got = (self.headers.get('Authorization') or '').encode()
                if not hmac.compare_digest(got, b'Bearer ' + token):
                    return self._reply(401, b'a bearer token is required\n',
                                       {'WWW-Authenticate': 'Bearer'})
            body, content_type = render()
            self._reply(200, body, {'Content-Type': content_type})

        def _reply(self, status, body, headers=None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Cache-Control', 'no-store')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes are not worth a log line each
            pass

    return Handler


class MetricsExporter(Node):
    """The feed, the book and a loopback HTTP server of its text exposition."""

    def __init__(self):
        super().__init__(NODE_NAME)
        p = declare_parameters(self, PARAMETERS)
        bind = p['metrics_bind']
        token = read_token(p['metrics_token_file']) if p['metrics_token_file'] else b''
        if not is_loopback(bind) and not token:
            raise ParameterError('metrics_bind', f'{bind!r} is not loopback: the metrics '
                                 'show peer pseudonyms, so set metrics_token_file first')
        station = p['station_label'] or socket.gethostname()
        self.book = MetricsBook(station)
        self.feed = MetricsFeed(self, self.book, cmd_vel=p['cmd_vel'])
        self.exposition = Exposition(self.book, self.feed.lock)
        self.broker = None
        if p['broker_sys_url']:
            password = (read_secret_line(p['broker_sys_password_file'],
                                         'broker_sys_password_file')
                        if p['broker_sys_password_file'] else '')
            try:
                self.broker = BrokerSysLink(
                    self.book, self.feed.lock, p['broker_sys_url'],
                    username=p['broker_sys_username'], password=password,
                    ca_file=p['broker_sys_ca_file']).start()
            except ValueError as exc:
                raise ParameterError('broker_sys_url', str(exc)) from None
        handler = make_handler(self.exposition.render, token,
                               host_names(bind, p['metrics_allowed_hosts']))
        family = socket.AF_INET6 if ':' in bind else socket.AF_INET
        ThreadingHTTPServer.address_family = family
        try:
            self.server = ThreadingHTTPServer((bind, p['metrics_port']), handler)
        except OSError as exc:
            raise ParameterError('metrics_port', f'cannot listen on {bind}:'
                                 f"{p['metrics_port']}: {exc.strerror}") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name='metrics',
                                        daemon=True)
        self._thread.start()
        self.get_logger().info(f'metrics of {station} at http://{bind}:{self.port}/metrics')

    def destroy_node(self):
        if self.broker is not None:
            self.broker.stop()
        self.server.shutdown()
        self.server.server_close()
        super().destroy_node()


def main(args=None) -> int:
    """Run v2x_metrics_exporter."""
    return run_node(NODE_NAME, MetricsExporter, args)
