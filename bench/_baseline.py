"""The Python sources of some packages at another git revision, for a baseline run in the
same bench run: ``PYTHONPATH=<tree>:...`` makes a child process import them instead of the
workspace's (everything else, v2x_msgs and v2x_common included, stays the workspace's).
"""

import contextlib
from pathlib import Path
import shutil
import subprocess
import tarfile
import tempfile

WS = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def baseline_tree(ref: str, packages=('v2x_protocol',)):
    """A temporary directory holding src/<pkg>/<pkg> of each package at git ref; removed
    after the with-block."""
    out = Path(tempfile.mkdtemp(prefix='v2x_baseline_'))
    try:
        paths = [f'src/{p}/{p}' for p in packages]
        archive = subprocess.run(['git', '-C', str(WS), 'archive', '--format=tar', ref,
                                  *paths], check=True, capture_output=True).stdout
        tar = out / 'src.tar'
        tar.write_bytes(archive)
        with tarfile.open(tar) as f:
            f.extractall(out / 'x')  # noqa: S202 -- our own repository's archive
        for p in packages:
            shutil.move(str(out / 'x' / 'src' / p / p), str(out / p))
        shutil.rmtree(out / 'x')
        tar.unlink()
        yield str(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
