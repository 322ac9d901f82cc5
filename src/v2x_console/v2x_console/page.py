"""The page as first served: the template with the state inline and the alert rows rendered.

The alert table is rendered here, on the server, so the first paint already shows the
active alerts (most severe first) even before app.js runs; app.js then takes over the
same table (same columns and classes) and keeps it live.

Text from the air (roads, station ids, clip ids, diagnostics) never becomes markup: the
template is filled in one pass, so only placeholders written in the template are
replaced and a value that reads like a placeholder stays text; table text is
HTML-escaped; the inline JSON has every ``<``, ``>`` and ``&`` as a \\u escape, so no
``</script>``, ``<!--`` or ``<script`` inside a value can end or change the script
element that holds it.
"""

from html import escape
import json
import re

SEVERITY_TEXT = {3: 'HIGH', 2: 'MEDIUM', 1: 'LOW'}


#: The template's placeholders: __NAME__ in capitals (only those render_page fills).
PLACEHOLDER = re.compile(r'__([A-Z][A-Z_]*[A-Z])__')
#: Characters that could end or change a script element, as JSON string escapes.
_SCRIPT_SAFE = str.maketrans({'<': '\\u003c', '>': '\\u003e', '&': '\\u0026'})


def json_for_script(data) -> str:
    """JSON for inside a <script type="application/json"> element: ``<``, ``>`` and ``&``
    only as \\u escapes (they can appear only inside JSON strings, where the escape reads
    back as the same character)."""
    return json.dumps(data, separators=(',', ':'), allow_nan=False).translate(_SCRIPT_SAFE)


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each __NAME__ of the template by values[NAME], in one pass over the template
    (a value is never searched for placeholders); a placeholder without a value, or a
    value without its placeholder, is a programming error."""
    unused = set(values)

    def value(match: re.Match) -> str:
        unused.discard(match.group(1))
        return values[match.group(1)]
    out = PLACEHOLDER.sub(value, template)
    if unused:
        raise KeyError(f'the template has no placeholder for {sorted(unused)}')
    return out


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
    return fill(template, {
        'ALERT_ROWS': rows,
        'ALERTS_HIDDEN': '' if alerts else ' hidden',
        'NO_ALERTS_HIDDEN': ' hidden' if alerts else '',
        'ALERT_COUNT': f'({len(alerts)})' if alerts else '',
        'INITIAL_STATE': json_for_script(snapshot)})
