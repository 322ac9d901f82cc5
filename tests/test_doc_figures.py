"""Every measured figure quoted in the docs says where it comes from.

A section of README.md, docs/*.md, deploy/README.md or src/*/README.md (heading to next
heading) that quotes a measurement (latency percentiles, fps, RSS/PSS, CPU per frame,
rates per second) must name the bench/ script that measures it (and that script must
exist), or say when and where it was measured (`measured YYYY-MM-DD`), so a reader can
re-run it or knows it is a figure from the past. Pure text; runs in milliseconds.
"""

from pathlib import Path
import re

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_GLOBS = ('README.md', 'docs/*.md', 'deploy/README.md', 'src/*/README.md')
#: what a measured figure looks like (a number with a unit of speed, latency or memory)
FIGURE = re.compile(
    r'\bp(50|99)\b|(?<!@ )\b\d[\d.]*\s*fps\b|\bRSS\b|\bPSS\b|CPU ms|'
    r'\d[\d,.]*\s*(datagrams|events|alerts|garbage|MAC-checked)/s\b|'
    r'\d[\d.]*\s*ms\b.*\b(latency|reaction|bench)\b')
BENCH = re.compile(r'bench/(bench_\w+\.py)')
DATED = re.compile(r'measured (on )?\d{4}-\d{2}-\d{2}|measured [^.]*\b\d{4}-\d{2}-\d{2}')


def sections():
    """(doc:line of the heading, text) for every section of every doc."""
    out = []
    for pattern in DOC_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            line = 1
            for text in re.split(r'\n(?=#{1,4} )', path.read_text(encoding='utf-8')):
                out.append((f'{path.relative_to(ROOT)}:{line}', text))
                line += text.count('\n') + 1
    return out


def test_figure_pattern_finds_measurements_only():
    """The pattern sees a latency figure and a rate, not a parameter default."""
    assert FIGURE.search('p50 1.9 ms / p99 16 ms')
    assert FIGURE.search('it rejected 39,900 garbage/s')
    assert not FIGURE.search('| csv_max_bytes / csv_keep | 10000000 / 5 | 10 MB |')
    assert not FIGURE.search('lavfi test pattern, 320x240 @ 10 fps')  # a format, not a figure
    assert FIGURE.search('| onnx | 34.9 fps |')


@pytest.mark.parametrize('where,text', [s for s in sections() if FIGURE.search(s[1])],
                         ids=lambda v: v if ':' in str(v) else '')
def test_measured_figures_name_their_bench_or_date(where, text):
    """A section with measured figures names an existing bench script or a dated run."""
    scripts = set(BENCH.findall(text))
    missing = sorted(s for s in scripts if not (ROOT / 'bench' / s).exists())
    assert not missing, f'{where}: names bench scripts that do not exist: {missing}'
    figure = FIGURE.search(text).group(0)
    assert scripts or DATED.search(text), (
        f'{where}: quotes measured figures ({figure!r}) without the bench/ command that '
        'produced them or a "measured YYYY-MM-DD" note')
