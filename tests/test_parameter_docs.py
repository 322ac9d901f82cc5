"""The parameter tables of the docs agree with the nodes' declarations (v2x_common.params).

Each node declares its parameters once, as a table of Param rows; the docs describe them in
Markdown tables (``| parameter | default | ... |``, several names and defaults may share a
row as ``a / b`` and ``1 / 2``). This test reads those tables and checks that every
documented name is declared with the documented default, and every declared parameter is
documented. Pure: it imports the node modules but starts nothing.
"""

import math
from pathlib import Path
import re

import pytest

from v2x_common.params import defaults

WS = Path(__file__).resolve().parents[1]

#: doc file -> [(heading that starts the node's section, or '' for the whole file, node)]
DOCS = {
    'docs/detector.md': [('', 'hazard_detector')],
    'docs/event_intake.md': [('', 'event_intake')],
    'docs/speed_policy.md': [('', 'speed_policy')],
    'docs/recorder.md': [('## segment_recorder', 'segment_recorder'),
                         ('## event_clipper', 'event_clipper')],
    'src/v2x_bridge/README.md': [('', 'alert_gateway')],
    'docs/denm.md': [('', 'denm_gateway')],
    'docs/console.md': [('', 'v2x_console')],
}


def node_table(node: str) -> dict:
    """name -> default of the node's declared table."""
    if node == 'alert_gateway':
        from v2x_bridge.alert_gateway import PARAMETERS
    elif node == 'event_intake':
        from v2x_intake.core import PARAMETERS
    elif node == 'speed_policy':
        from v2x_policy.speed_policy import PARAMETERS
    elif node == 'hazard_detector':
        from v2x_detector.hazard_detector import PARAMETERS
    elif node == 'denm_gateway':
        from v2x_denm.denm_gateway import PARAMETERS
    elif node == 'v2x_console':
        from v2x_console.v2x_console import PARAMETERS
    elif node == 'segment_recorder':
        from v2x_recorder.segment_recorder import PARAMETERS
    else:
        from v2x_recorder.event_clipper import PARAMETERS
    return defaults(PARAMETERS)


def _section(text: str, heading: str) -> str:
    if not heading:
        return text
    start = text.index(heading + '\n')
    nxt = text.find('\n## ', start + len(heading))
    return text[start:] if nxt < 0 else text[start:nxt]


def doc_rows(text: str) -> list[tuple[str, str]]:
    """(name, default) of every row of the parameter tables in text, ``a / b`` split."""
    rows, in_table = [], False
    for line in text.splitlines():
        if not line.startswith('|'):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) >= 2 and cells[0] in ('parameter', 'name') and cells[1] == 'default':
            in_table = True
            continue
        if not in_table or set(cells[0]) <= set('-: '):
            continue
        names = [n.strip().strip('`') for n in cells[0].split(' / ')]
        values = [v.strip() for v in cells[1].split(' / ')]
        if len(values) == 1 and len(names) > 1:  # one default shared by all names
            values = values * len(names)
        assert len(names) == len(values), f'row {line!r}: names and defaults do not pair up'
        rows += zip(names, values, strict=True)
    return rows


def _strip(text: str) -> str:
    text = text.strip().strip('`')
    text = re.sub(r'\s*\(.*\)$', '', text)  # a remark in brackets: '2592000.0 (0 = keep)'
    return text.strip().strip('`')


def same(doc: str, value) -> bool:
    """The documented default (Markdown) means the declared value."""
    doc = _strip(doc)
    if isinstance(value, bool):
        return doc == str(value).lower()
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return doc.lower() == 'nan'
        try:
            return float(doc.replace('_', '')) == value
        except ValueError:
            return False
    if isinstance(value, (list, tuple)):
        items = [i.strip() for i in doc.strip('[]').split(',') if i.strip()]
        return items == [str(v) for v in value]
    return doc.strip("'") == value or (doc in ("''", '""') and value == '')


CASES = [(doc, heading, node) for doc, sections in DOCS.items() for heading, node in sections]


@pytest.mark.parametrize('doc, heading, node', CASES, ids=[c[2] for c in CASES])
def test_doc_table_matches_declarations(doc, heading, node):
    """Every documented parameter is declared with the documented default, and every
    declared parameter is documented."""
    table = node_table(node)
    rows = doc_rows(_section((WS / doc).read_text(encoding='utf-8'), heading))
    assert rows, f'{doc}: no parameter table for {node}'
    documented = set()
    for name, default in rows:
        if '<' in name:  # a pattern such as <rule>.kinds: not a declared name
            continue
        assert name in table, f'{doc}: {name!r} is not a parameter of {node}'
        assert same(default, table[name]), \
            f'{doc}: {node}.{name} documented as {default!r}, declared {table[name]!r}'
        documented.add(name)
    missing = set(table) - documented
    assert not missing, f'{doc}: {node} parameters not documented: {sorted(missing)}'


def test_rows_parse():
    """The table reader splits shared rows and pairs names with defaults."""
    text = '| parameter | default | |\n|---|---|---|\n| a / b | 1 / `x` | |\n| c | [p, q] | |\n'
    assert doc_rows(text) == [('a', '1'), ('b', '`x`'), ('c', '[p, q]')]
    assert same('`x`', 'x') and same("''", '') and same('[p, q]', ['p', 'q'])
    assert not same('2.0', 1.0) and same('NaN', math.nan) and same('true', True)
