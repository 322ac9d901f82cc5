"""The import contract: packages depend only downwards, and no application package
imports another (what import-linter's "layers" and "independence" contracts say, read
here from the source's ASTs: every import statement, those inside functions included).

Layers, lowest first; a package may import its own layer's libraries only where listed:

    v2x_msgs < v2x_common < v2x_protocol < libraries < applications < compositions

Each package's package.xml must also declare every package of ours it imports (colcon
builds and installs by those declarations). A package under src/ that is in no layer
fails the test until it is placed.
"""

import ast
from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

SRC = Path(__file__).resolve().parent.parent / 'src'

#: Lowest first. Within a layer, packages are independent of each other.
LAYERS = (
    ('messages', ('v2x_msgs',)),
    ('common', ('v2x_common',)),
    ('protocol', ('v2x_protocol',)),
    ('libraries', ('v2x_federation', 'v2x_http', 'v2x_conversion', 'v2x_metrics',
                   'v2x_evidence')),
    ('applications', ('v2x_bridge', 'v2x_intake', 'v2x_detector', 'v2x_recorder',
                      'v2x_policy', 'v2x_denm', 'v2x_console')),
    ('compositions', ('v2x_stacks',)),
)
LAYER_OF = {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}


def imported_packages(source: str) -> set[str]:
    """The top-level names of every module an import statement in source names."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split('.')[0])
    return found


def violations(pkg: str, imports: set[str]) -> list[str]:
    """What is wrong with pkg importing these of our packages."""
    mine = LAYER_OF[pkg]
    problems = []
    for other in sorted(imports & set(LAYER_OF) - {pkg}):
        theirs = LAYER_OF[other]
        if theirs > mine:
            problems.append(f'{pkg} imports {other}, a layer above it '
                            f'({LAYERS[theirs][0]} > {LAYERS[mine][0]})')
        elif theirs == mine:
            problems.append(f'{pkg} imports {other} sideways (both {LAYERS[mine][0]}): move '
                            'what they share down a layer')
    return problems


def _python_packages() -> list[Path]:
    return sorted(p for p in SRC.iterdir() if (p / 'package.xml').exists())


def _sources(pkg_dir: Path):
    code = pkg_dir / pkg_dir.name
    return sorted(code.rglob('*.py')) if code.is_dir() else []


def test_every_package_has_a_layer():
    """A package under src/ must be placed in LAYERS (and every placed one exists)."""
    present = {p.name for p in _python_packages()}
    assert present - set(LAYER_OF) == set(), 'place the new package in LAYERS'
    assert set(LAYER_OF) - present == set()


@pytest.mark.parametrize('pkg_dir', _python_packages(), ids=lambda p: p.name)
def test_imports_point_down_and_are_declared(pkg_dir):
    """No module of the package imports a package of its own layer or above, and every
    package of ours it imports is in its package.xml."""
    pkg = pkg_dir.name
    problems, imported = [], set()
    for path in _sources(pkg_dir):
        imports = imported_packages(path.read_text(encoding='utf-8'))
        imported |= imports & set(LAYER_OF)
        problems += [f'{path.relative_to(SRC)}: {p}' for p in violations(pkg, imports)]
    declared = {e.text for e in ET.parse(pkg_dir / 'package.xml').getroot()
                if e.tag.endswith('depend')}
    problems += [f'{pkg} imports {o} but its package.xml does not declare it'
                 for o in sorted(imported - declared - {pkg})]
    assert problems == []


@pytest.mark.parametrize('pkg, source, wrong', [
    # sideways: one application importing another, at the top or inside a function
    ('v2x_console', 'from v2x_intake.http_api import HttpServer', 'sideways'),
    ('v2x_policy', 'def f():\n    import v2x_bridge.alert_gateway', 'sideways'),
    # upwards: a library importing an application, the core importing a library
    ('v2x_conversion', 'from v2x_policy import policy', 'above'),
    ('v2x_protocol', 'import v2x_http.server as s', 'above'),
    ('v2x_common', 'from v2x_protocol.wire import AlertData', 'above'),
])
def test_the_checker_flags_wrong_imports(pkg, source, wrong):
    """Hostile imports are named (so the contract test above can fail)."""
    problems = violations(pkg, imported_packages(source))
    assert len(problems) == 1 and wrong in problems[0]


def test_the_checker_allows_downward_and_foreign_imports():
    """Imports of lower layers, of the package itself and of third-party modules pass;
    a relative import is the package's own."""
    source = ('import rclpy\nfrom v2x_common import qos\nfrom v2x_conversion.alert import '
              'alert_to_msg\nfrom v2x_bridge import net\nfrom . import sibling\n')
    assert violations('v2x_bridge', imported_packages(source)) == []
    assert violations('v2x_stacks', imported_packages('from v2x_bridge import x\n'
                                                      'from v2x_policy import y')) == []
