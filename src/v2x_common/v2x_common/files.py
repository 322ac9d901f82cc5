"""File helpers shared by the nodes: the one atomic, durable writer; file hashes.

Pure Python (standard library only: the protocol core imports it without rclpy).

Contract of :func:`write_atomic` / :func:`write_json_atomic`: a reader sees the old file
or the new one, never half of one (a hidden temporary file in the same directory, renamed
over the target), and once the call returns the new content survives a power cut: the
temporary file is fsynced before the rename and the directory after it. On any error the
temporary file is removed and the target is untouched. State files (sequence counters,
the outbox, pending clips), clip sidecars and the detector's JSON events all go through it.
"""

import hashlib
import json
import os
import tempfile


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (clips, model weights)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(directory: str) -> None:
    """Make a rename or a new name in directory durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int = 0o644) -> None:
    """Replace path with data atomically and durably (temp file, fsync, rename, fsync dir).

    The directory is created when missing; ``mode`` is the new file's permission.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or '.'
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]  # a hidden '.tmp-*.json' is no candidate for readers
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=suffix)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_json_atomic(path: str | os.PathLike, data, indent: int | None = None,
                      mode: int = 0o644) -> None:
    """Write data as JSON (sorted keys, a final newline) with :func:`write_atomic`."""
    write_atomic(path, json.dumps(data, indent=indent, sort_keys=True) + '\n', mode)
