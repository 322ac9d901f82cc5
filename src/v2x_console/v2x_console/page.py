"""The page as first served: the template with the state inline and the alert rows rendered.

The alert table is rendered here, on the server, so the first paint already shows the
active alerts (most severe first) even before app.js runs; app.js then takes over the
same table (same columns and classes) and keeps it live. Everything from the state is
HTML-escaped.
"""

from html import escape
import json

SEVERITY_TEXT = {3: 'HIGH', 2: 'MEDIUM', 1: 'LOW'}


def _json_for_script(data) -> str:
    """JSON for inside a <script type="application/json"> element (no '</' to end it)."""
    return json.dumps(data, separators=(',', ':'), allow_nan=False).replace('</', '<\\/')


def _metres(d) -> str:
    if d is None:
        return 'unknown'
    if d >= 1000:
        return f'{d / 1000:.{0 if d >= 10000 else 1}f} km'
    return f'{round(d)} m'


def _countdown(left: float) -> str:
    if left <= 0:
        return 'expired'
    s = int(left)
    h, m, sec = s // 3600, (s % 3600) // 60, s % 60
    return f'{h}:{m:02d}:{sec:02d}' if h else f'{m}:{sec:02d}'


def alert_row(a: dict, now: float) -> str:
    """One <tr> of the alert table, as app.js renders it (without the Cancel button)."""
    level = int(a['severity_level'])
    signed = 'yes' if a['authenticated'] else ('own' if a['own'] else 'NO')
    cells = [
        f'<span class="badge sev-{level}">'
        f'{escape(SEVERITY_TEXT.get(level, a["severity"].upper()))}</span>',
        escape(a['kind'].replace('_', ' ')), escape(a['suggest'].replace('_', ' ')),
        _metres(a['distance_m']), escape(a['road'] or '–'),
        f'{escape(a["source_id"])} #{a["sequence"]}',
        _countdown(a['expires_at'] - now), escape(a['path']), signed,
        escape(a['clip_state'] or '–'), '']
    attrs = ['', ' class="kind"', '', '', '', '',
             f' class="countdown" data-expires="{a["expires_at"]}"', '', '', '', '']
    tds = ''.join(f'<td{attr}>{cell}</td>' for attr, cell in zip(attrs, cells, strict=True))
    return f'<tr class="sev-{level}" data-id="{escape(a["id"])}">{tds}</tr>'


def render_page(template: str, snapshot: dict) -> str:
    """The page with the snapshot inline and the active alerts already in the table."""
    alerts = snapshot['alerts']
    rows = ''.join(alert_row(a, snapshot['now']) for a in alerts)
    return (template
            .replace('__ALERT_ROWS__', rows)
            .replace('__ALERTS_HIDDEN__', '' if alerts else ' hidden')
            .replace('__NO_ALERTS_HIDDEN__', ' hidden' if alerts else '')
            .replace('__ALERT_COUNT__', f'({len(alerts)})' if alerts else '')
            .replace('__INITIAL_STATE__', _json_for_script(snapshot)))
