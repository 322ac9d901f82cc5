import pytest

from v2x_common.redact import redact_url


@pytest.mark.parametrize('given,shown', [
    ('rtsp://admin:s3cret@10.0.0.5:554/stream1', 'rtsp://***@10.0.0.5:554/stream1'),
    ('rtsp://onlyuser@cam.local/live?x=1', 'rtsp://***@cam.local/live?x=1'),
    ('rtsp://cam.local/live', 'rtsp://cam.local/live'),          # nothing to hide
    ('/dev/video0', '/dev/video0'),                               # not a URL
    ('udp://127.0.0.1:5600', 'udp://127.0.0.1:5600'),
])
def test_redact_url(given, shown):
    """User and password of a camera URL never reach a log line; other text is unchanged."""
    assert redact_url(given) == shown
    assert 's3cret' not in redact_url(given)
