"""Schemathesis against the OpenAPI that a running event_intake serves (skipped without it)."""

import secrets
import time

from hypothesis import HealthCheck, given, settings
import pytest
from rclpy.parameter import Parameter

from v2x_intake.event_intake import EventIntake

schemathesis = pytest.importorskip('schemathesis', reason='schemathesis is not installed')

TOKEN = secrets.token_urlsafe(16)


@pytest.fixture
def served_schema(ros, tmp_path):
    """A real node (HTTP only) and the schema loaded from its /openapi.json."""
    token_file = tmp_path / 'token'
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    node = EventIntake(context=ros.context, parameter_overrides=[
        Parameter('events_dir', value=''), Parameter('state_dir', value=str(tmp_path)),
        Parameter('http_port', value=0), Parameter('token_file', value=str(token_file)),
        Parameter('hold_without_subscriber', value=False)])
    ros.add(node)
    assert ros.spin_until(lambda: node.http_ready, 20)
    return schemathesis.openapi.from_url(f'http://127.0.0.1:{node.http_port}/openapi.json')


def _fits_the_wire(text: str) -> bool:
    try:
        return len(text.encode('utf-8')) <= 255
    except UnicodeEncodeError:
        return False


def test_served_api_conforms(served_schema):
    """Generated requests to every operation: no 5xx, documented codes and bodies, bad data 4xx."""
    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert {op.label for op in operations} == {'POST /events', 'GET /healthz'}
    headers = {'Authorization': f'Bearer {TOKEN}'}
    for operation in operations:
        # schemathesis' own pytest plugin does not run under pytest 9: drive it by hand.
        @given(case=operation.as_strategy())
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            body = case.body
            if isinstance(body, dict) and type(body.get('ts')) in (int, float):
                # The schema cannot say "recent": a generated number is almost always long
                # expired (422, rightly). Make numeric ts current; schemathesis re-checks
                # whether the case is still schema-valid or not.
                body['ts'] = time.time()
            if isinstance(body, dict) and isinstance(body.get('road'), str) and \
                    not _fits_the_wire(body['road']):
                # nor "at most 255 bytes of UTF-8" (maxLength counts characters, and a lone
                # surrogate is no UTF-8): the range table refuses those roads (422, rightly)
                body['road'] = 'segment_A'
            case.call_and_validate(headers=headers)

        check()
