"""Atomic JSON files: a reader sees the old file or the new one, never half of one."""

import json
import os
import tempfile


def write_json_atomic(path: str, data, mode: int = 0o644) -> None:
    """Write data as JSON to path via a temporary file in the same directory, fsync, rename."""
    directory = os.path.dirname(path) or '.'
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.json')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
