"""File helpers shared by the nodes (pure Python)."""

import hashlib


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (clips, model weights)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
