"""ROS 2 Humble runs Python 3.10: every Python file of the workspace parses as 3.10 and
uses nothing of the standard library newer than 3.10 (vermin, pinned in requirements/).

Humble has no wheels on PyPI, so it is "compatible by design": this is the check that
keeps the design honest (Kilted and Jazzy are verified by running the suite on them).
"""

import ast
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

WS = Path(__file__).resolve().parents[1]
TREES = ('src', 'scripts', 'tests', 'bench', 'conftest.py')
VERMIN = shutil.which('vermin') or str(Path(sys.executable).with_name('vermin'))


def _files() -> list[Path]:
    out = []
    for tree in TREES:
        path = WS / tree
        out.extend([path] if path.is_file() else sorted(path.rglob('*.py')))
    return [p for p in out if '__pycache__' not in p.parts]


def _vermin(*paths) -> subprocess.CompletedProcess:
    if not Path(VERMIN).exists():
        pytest.skip('vermin is not installed: make setup (requirements/base.txt)')
    return subprocess.run([VERMIN, '--no-tips', '-t=3.10-', '--violations', '--eval-annotations',
                           '--no-parse-comments', *map(str, paths)],
                          capture_output=True, text=True, timeout=300)


def test_every_file_parses_as_python_310():
    """Each .py file of src, scripts, tests and bench is valid Python 3.10 syntax."""
    bad = []
    for path in _files():
        try:
            ast.parse(path.read_text(encoding='utf-8'), str(path), feature_version=(3, 10))
        except SyntaxError as exc:
            bad.append(f'{path.relative_to(WS)}:{exc.lineno}: {exc.msg}')
    assert not bad, '\n'.join(bad)


def test_no_standard_library_api_newer_than_310(tmp_path):
    """vermin finds no module, member or syntax that needs Python > 3.10 in any file; and
    it does find them (tomllib, datetime.UTC, except*) in a file that has them."""
    newer = tmp_path / 'newer.py'
    newer.write_text('import tomllib\nfrom datetime import UTC\n')
    caught = _vermin(newer)
    assert caught.returncode != 0 and "'tomllib' module requires" in caught.stdout, caught
    result = _vermin(*(WS / t for t in TREES))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert 'Target versions not met' not in result.stdout, result.stdout[-4000:]
