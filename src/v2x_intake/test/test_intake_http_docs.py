"""event_intake's API documentation page, served by the shared HTTP server, without ROS."""

import time

import httpx
import pytest

from v2x_http.server import HttpServer, bind
from v2x_intake.core import EventPublished
from v2x_intake.http_api import create_app


def _wait(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope='module')
def server():
    """The intake's app on the real server."""
    sock = bind('127.0.0.1', 0)
    srv = HttpServer(create_app(lambda body, client: EventPublished('id:x'), None,
                                lambda: {}), sock)
    srv.start()
    assert _wait(lambda: srv.started)
    yield srv
    srv.stop()


def test_docs_page_is_self_contained(server):
    """/docs renders without anything from the network (FastAPI's page needs a CDN) and
    points to /openapi.json."""
    page = httpx.get(f'http://127.0.0.1:{server.port}/docs', timeout=10)
    assert page.status_code == 200 and page.headers['content-type'].startswith('text/html')
    assert '/openapi.json' in page.text and 'POST /events' in page.text
    assert 'http://' not in page.text and 'https://' not in page.text
    assert '<script' not in page.text
    assert httpx.get(f'http://127.0.0.1:{server.port}/redoc', timeout=10).status_code == 404
