"""The package's shape (issue 22 item 4): a pure core that reads no file, environment or
host, its I/O edge in v2x_protocol.io, and a small public surface (__all__ facades)."""

import ast
import importlib
from pathlib import Path

import pytest

import v2x_protocol
import v2x_protocol.io

PKG = Path(v2x_protocol.__file__).resolve().parent
CORE = ('wire', 'receiver', 'sender', 'keys', 'ranges', 'peers')
#: what the core must not import: files, the environment, the host, locks, the network
IO_MODULES = {'os', 'pathlib', 'fcntl', 'socket', 'shutil', 'tempfile', 'subprocess',
              'v2x_common', 'v2x_protocol.io'}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize('module', CORE)
def test_core_module_does_no_io(module):
    """A core module imports nothing that reads files, the environment or the host."""
    found = {n for n in _imports(PKG / f'{module}.py')
             if n in IO_MODULES or n.split('.')[0] in IO_MODULES - {'v2x_protocol.io'}
             or n.startswith('v2x_protocol.io')}
    assert not found, f'{module}.py imports {sorted(found)}'


@pytest.mark.parametrize('package', [v2x_protocol, v2x_protocol.io],
                         ids=['v2x_protocol', 'v2x_protocol.io'])
def test_facade_names_resolve(package):
    """Every name of the facade's __all__ resolves, to the object its module defines;
    an unknown name raises AttributeError."""
    for name in package.__all__:
        value = getattr(package, name)
        assert value is getattr(importlib.import_module(
            f'{package.__name__}.{package._EXPORTS[name]}'), name)
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018 -- the lookup is the test


@pytest.mark.parametrize('module', CORE + ('io.keys', 'io.state', 'io.station'))
def test_module_all_lists_only_what_it_defines(module):
    """Each module's __all__ names objects it has (the public surface is explicit)."""
    mod = importlib.import_module(f'v2x_protocol.{module}')
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing and len(set(mod.__all__)) == len(mod.__all__)
