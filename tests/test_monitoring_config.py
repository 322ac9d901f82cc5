"""The shipped monitoring files load in the real tools: deploy/prometheus/prometheus.yml in
promtool, and every query of deploy/grafana/v2x-dashboard.json parses as PromQL and names
only metrics our exporters produce (Grafana is not packaged here: the dashboard is linted,
not rendered)."""

import json
from pathlib import Path
import re
import shutil
import subprocess

import pytest

from v2x_metrics.book import COUNTERS

WS = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which('promtool')
DASHBOARD = WS / 'deploy/grafana/v2x-dashboard.json'
#: Families every book yields whatever the node (docs/metrics.md).
FIXED = {'v2x_node_level', 'v2x_node_report_age_seconds', 'v2x_peer_heartbeat_age_seconds',
         'v2x_peer_clock_offset_seconds', 'v2x_peer_stale', 'v2x_peer_active_alerts',
         'v2x_peer_authenticated', 'v2x_peer_role', 'v2x_policy_action',
         'v2x_policy_speed_limit_mps', 'v2x_policy_enabled', 'v2x_policy_decisions_total',
         'v2x_cmd_vel_messages_total', 'v2x_alert_messages_total',
         'v2x_alert_latency_seconds_bucket', 'v2x_alert_hop_seconds_bucket'}

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason='promtool (Debian package '
                                    'prometheus) is not installed')


@needs_promtool
def test_scrape_config_loads_in_promtool(tmp_path):
    """The example scrape config passes `promtool check config` (only the token paths are
    substituted: promtool wants them to exist)."""
    text = (WS / 'deploy/prometheus/prometheus.yml').read_text()
    for path in sorted(set(re.findall(r'credentials_file: (\S+)', text))):
        local = tmp_path / Path(path).name
        local.write_text('a-scrape-token-of-24-chars\n')
        text = text.replace(path, str(local))
    config = tmp_path / 'prometheus.yml'
    config.write_text(text)
    out = subprocess.run([PROMTOOL, 'check', 'config', str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _queries():
    dash = json.loads(DASHBOARD.read_text())
    return dash, [(p['title'], t['expr']) for p in dash['panels'] for t in p['targets']]


def test_dashboard_is_a_well_formed_grafana_dashboard():
    """Unique panel ids, panels inside the 24-column grid without overlapping, every
    target with a refId and a Prometheus datasource, the station variable defined."""
    dash, queries = _queries()
    ids = [p['id'] for p in dash['panels']]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in dash['panels']:
        g = p['gridPos']
        assert 0 <= g['x'] and g['x'] + g['w'] <= 24, p['title']
        for x in range(g['x'], g['x'] + g['w']):
            for y in range(g['y'], g['y'] + g['h']):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
        assert p['targets'] and all(t['refId'] and t['datasource']['type'] == 'prometheus'
                                    for t in p['targets'])
    names = {v['name'] for v in dash['templating']['list']}
    assert {'datasource', 'station'} <= names
    assert all('$station' in expr for _, expr in queries)


@needs_promtool
def test_every_dashboard_query_parses_as_promql(tmp_path):
    """promtool parses each query (as a recording rule) without error."""
    _, queries = _queries()
    rules = {'groups': [{'name': 'dashboard', 'rules': [
        {'record': f'v2x_dashboard_query_{i}', 'expr': expr.replace('$station', '.*')}
        for i, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / 'rules.json'   # YAML is a superset of JSON
    path.write_text(json.dumps(rules))
    out = subprocess.run([PROMTOOL, 'check', 'rules', str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_names_only_metrics_the_exporters_produce():
    """A renamed metric breaks the dashboard silently in Grafana: here it fails."""
    _, queries = _queries()
    for title, expr in queries:
        for name in re.findall(r'\b(v2x_[a-z0-9_]+)', expr):
            if name in FIXED:
                continue
            comp = next((c for c in COUNTERS if name.startswith(f'v2x_{c}_')), None)
            assert comp is not None, f'{title}: {name} is no family of ours'
            key = name[len(f'v2x_{comp}_'):]
            if key.endswith('_total'):
                key = key[:-len('_total')]
                assert key in COUNTERS[comp] or key == 'dropped', \
                    f'{title}: {name}: {key} is not a counter of {comp}'
            else:
                assert key not in COUNTERS[comp], f'{title}: {name} is a counter: _total'
