"""Keep credentials out of logs and diagnostics."""

from urllib.parse import urlsplit, urlunsplit


def redact_url(text: str) -> str:
    """'rtsp://user:pass@cam/stream' -> 'rtsp://***@cam/stream'; anything else unchanged."""
    if '://' not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.username is None and parts.password is None:
        return text
    host = parts.hostname or ''
    if parts.port is not None:
        host = f'{host}:{parts.port}'
    return urlunsplit((parts.scheme, f'***@{host}', parts.path, parts.query, parts.fragment))
