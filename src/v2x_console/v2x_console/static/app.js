// The V2X console page: renders the inline state at once, then stays live over
// server-sent events (/api/events). Plain DOM, no framework, no network beyond this host.
'use strict';

const SEVERITY_TEXT = {3: 'HIGH', 2: 'MEDIUM', 1: 'LOW'};
const SUGGEST_RANK = {stop: 2, slow_down: 1, none: 0};
const EARTH_RADIUS_M = 6371000;

let state = JSON.parse(document.getElementById('initial-state').textContent);
// server clock minus this browser's: countdowns use the server's time
let offsetMs = state.now * 1000 - Date.now();
const alerts = new Map(state.alerts.map((a) => [a.id, a]));
const diagnostics = new Map(state.diagnostics.map((d) => [d.name, d]));
const held = new Map((state.held || []).map((h) => [h.id, h]));
const MAX_DECIDED_SHOWN = 20;

const $ = (id) => document.getElementById(id);
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function serverNow() { return (Date.now() + offsetMs) / 1000; }

function localTime(t, withDate) {
  if (t === null || t === undefined) return '–';
  const opts = {hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
    timeZoneName: 'short'};
  if (withDate) Object.assign(opts, {year: 'numeric', month: '2-digit', day: '2-digit'});
  return new Date(t * 1000).toLocaleString(undefined, opts);
}

function duration(s) {
  if (s === null || s === undefined) return '–';
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const two = (n) => String(n).padStart(2, '0');
  return h ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

function metres(d) {
  if (d === null || d === undefined) return 'unknown';
  return d >= 1000 ? `${(d / 1000).toFixed(d >= 10000 ? 0 : 1)} km` : `${Math.round(d)} m`;
}

function words(s) { return String(s).replace(/_/g, ' '); }

function sortedAlerts() {
  return [...alerts.values()].sort((a, b) =>
    (b.severity_level - a.severity_level) ||
    ((SUGGEST_RANK[b.suggest] || 0) - (SUGGEST_RANK[a.suggest] || 0)) ||
    (a.expires_at - b.expires_at) || (a.id < b.id ? -1 : 1));
}

// --- alerts ---------------------------------------------------------------------------
function renderAlerts() {
  const body = $('alerts').tBodies[0];
  const rows = sortedAlerts().map((a) => {
    const sev = SEVERITY_TEXT[a.severity_level] || a.severity.toUpperCase();
    const cancel = (state.actions && a.own) ? el('button', {
      type: 'button', class: 'danger', 'data-cancel': a.id,
      'aria-label': `Cancel alert ${a.id}`, onclick: () => cancelAlert(a)}, 'Cancel') : '';
    return el('tr', {class: `sev-${a.severity_level}`, 'data-id': a.id},
      el('td', {}, el('span', {class: `badge sev-${a.severity_level}`}, sev)),
      el('td', {class: 'kind'}, words(a.kind)),
      el('td', {}, words(a.suggest)),
      el('td', {}, metres(a.distance_m)),
      el('td', {}, a.road || '–'),
      el('td', {}, `${a.source_id} #${a.sequence}`),
      el('td', {class: 'countdown', 'data-expires': a.expires_at}, countdownText(a)),
      el('td', {}, a.path),
      el('td', {}, a.authenticated ? 'yes' : (a.own ? 'own' : 'NO')),
      el('td', {}, a.clip_state || '–'),
      el('td', {}, cancel));
  });
  body.replaceChildren(...rows);
  $('alerts').hidden = rows.length === 0;
  $('no-alerts').hidden = rows.length !== 0;
  $('alert-count').textContent = rows.length ? `(${rows.length})` : '';
  document.title = rows.length ? `(${rows.length}) V2X console` : 'V2X console';
  renderMap();
}

function countdownText(a) {
  const left = a.expires_at - serverNow();
  return left > 0 ? duration(left) : 'expired';
}

function tick() {
  const now = serverNow();
  let removed = false;
  for (const a of alerts.values()) {
    if (a.expires_at <= now) { alerts.delete(a.id); removed = true; }
  }
  if (removed) renderAlerts();
  for (const cell of document.querySelectorAll('#alerts td.countdown')) {
    const left = Number(cell.dataset.expires) - now;
    cell.textContent = left > 0 ? duration(left) : 'expired';
  }
  for (const cell of document.querySelectorAll('#peers td.age')) {
    cell.textContent = `${Math.max(0, now - Number(cell.dataset.heard)).toFixed(0)} s`;
  }
  for (const span of document.querySelectorAll('#held .held-countdown')) {
    const left = Number(span.dataset.deadline) - now;
    span.textContent = left > 0 ? `waiting: decided by the timeout in ${duration(left)}`
      : 'waiting: the timeout decides now';
  }
  $('clock').textContent = `${localTime(now, true)} (${zone})`;
}

// --- map: the site at the centre, alerts to scale (equirectangular, fine for km) ------
function enu(lat, lon, lat0, lon0) {
  const rad = Math.PI / 180;
  return [(lon - lon0) * rad * EARTH_RADIUS_M * Math.cos(lat0 * rad), (lat - lat0) * rad * EARTH_RADIUS_M];
}

function niceLength(x) {
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function tileLayer(lat0, lon0, metresPerPx, size) {
  // Web-mercator tiles around the site (only when a tile URL is configured).
  const url = state.site.tile_url;
  if (!url) return [];
  const rad = Math.PI / 180;
  const z = Math.max(0, Math.min(19, Math.round(Math.log2(
    (Math.cos(lat0 * rad) * 2 * Math.PI * EARTH_RADIUS_M) / (256 * metresPerPx)))));
  const n = Math.pow(2, z);
  const fx = ((lon0 + 180) / 360) * n;
  const fy = ((1 - Math.log(Math.tan(lat0 * rad) + 1 / Math.cos(lat0 * rad)) / Math.PI) / 2) * n;
  const tilePx = (Math.cos(lat0 * rad) * 2 * Math.PI * EARTH_RADIUS_M) / n / metresPerPx;
  const out = [];
  const span = Math.ceil(size / tilePx / 2) + 1;
  for (let dx = -span; dx <= span; dx++) {
    for (let dy = -span; dy <= span; dy++) {
      const tx = Math.floor(fx) + dx, ty = Math.floor(fy) + dy;
      if (ty < 0 || ty >= n) continue;
      const href = url.replace('{z}', z).replace('{x}', ((tx % n) + n) % n).replace('{y}', ty);
      out.push(svg('image', {href, x: size / 2 + (tx - fx) * tilePx, y: size / 2 + (ty - fy) * tilePx,
        width: tilePx, height: tilePx, opacity: 0.6}));
    }
  }
  return out;
}

function renderMap() {
  const map = $('map');
  const size = 400, half = size / 2, margin = 30;
  const site = state.site;
  const list = sortedAlerts();
  const own = state.position;  // a vehicle's own GPS fix: the centre of its map
  let lat0 = own ? own.lat : site.lat, lon0 = own ? own.lon : site.lon;
  const centre = own ? 'this vehicle' : 'site';
  const located = list.filter((a) => a.latitude !== null && a.longitude !== null);
  if (lat0 === null || lon0 === null) {
    if (located.length) { lat0 = located[0].latitude; lon0 = located[0].longitude; }
  }
  const parts = [svg('rect', {x: 0, y: 0, width: size, height: size, class: 'map-bg'})];
  if (lat0 === null || lon0 === null) {
    parts.push(svg('text', {x: half, y: half, class: 'map-label', 'text-anchor': 'middle'},
      'no site position and no located alert'));
    map.replaceChildren(...parts);
    $('map-desc').textContent = 'No position to draw.';
    return;
  }
  const points = located.map((a) => [a, ...enu(a.latitude, a.longitude, lat0, lon0)]);
  const reach = Math.max(100, ...points.map(([, x, y]) => Math.hypot(x, y)));
  const radius = niceLength(reach * 1.1);       // metres from the centre to the edge
  const mpp = radius / (half - margin);          // metres per pixel
  parts.push(...tileLayer(lat0, lon0, mpp, size));
  for (const r of [radius / 2, radius]) {
    parts.push(svg('circle', {cx: half, cy: half, r: r / mpp, class: 'ring'}));
  }
  if (own) {
    parts.push(svg('path', {d: `M${half},${half - 10} l8,18 l-16,0 z`, class: 'site'}));
  } else {
    parts.push(svg('rect', {x: half - 7, y: half - 7, width: 14, height: 14, class: 'site'}));
  }
  parts.push(svg('text', {x: half + 10, y: half - 10, class: 'map-label'}, centre));
  for (const [a, x, y] of points.slice().reverse()) {  // most severe drawn last (on top)
    const cx = half + x / mpp, cy = half - y / mpp;
    const g = svg('g', {class: `mark sev-${a.severity_level}`, 'data-id': a.id});
    g.append(svg('circle', {cx, cy, r: 9}));
    g.append(svg('text', {x: cx + 12, y: cy + 5, class: 'map-label'},
      `${words(a.kind)} ${(SEVERITY_TEXT[a.severity_level] || '').toLowerCase()}`));
    parts.push(g);
  }
  // north arrow (top right) and scale bar (bottom left)
  parts.push(svg('path', {d: `M${size - 25},40 l8,-22 l8,22 l-8,-6 z`, class: 'north'}));
  parts.push(svg('text', {x: size - 17, y: 55, 'text-anchor': 'middle', class: 'map-label'}, 'N'));
  const bar = radius / 2 / mpp;
  parts.push(svg('path', {d: `M15,${size - 15} h${bar} M15,${size - 20} v10 M${15 + bar},${size - 20} v10`,
    class: 'scale'}));
  parts.push(svg('text', {x: 15, y: size - 24, class: 'map-label'}, metres(radius / 2)));
  map.replaceChildren(...parts);
  const unplaced = list.length - located.length;
  $('map-desc').textContent = `${own ? 'This vehicle (GPS)' : 'Site'} at the centre; rings at ${metres(radius / 2)} and ` +
    `${metres(radius)}; ${located.length} alert(s) drawn` +
    (unplaced ? `, ${unplaced} without a position (listed above only)` : '') +
    '. Peers report no position (heartbeats carry none): see the peer table.';
}

// --- peers, policy, diagnostics, archive --------------------------------------------------
function renderPeers() {
  const rows = state.peers.map((p) => el('tr', {class: p.stale ? 'bad' : ''},
    el('td', {}, p.source_id), el('td', {}, p.role),
    el('td', {}, el('span', {class: `badge ${p.stale ? 'sev-3' : `level-${p.health}`}`},
      p.health.toUpperCase())),
    el('td', {class: 'status'}, p.status_message),
    el('td', {class: 'age', 'data-heard': p.last_heard}, `${p.age_s.toFixed(0)} s`),
    el('td', {}, p.clock_offset_s === null ? '–' : `${p.clock_offset_s.toFixed(3)} s`),
    el('td', {}, p.active_alerts), el('td', {}, p.path),
    el('td', {}, p.authenticated ? 'yes' : 'NO')));
  $('peers').tBodies[0].replaceChildren(...rows);
  $('peers').hidden = rows.length === 0;
  $('no-peers').hidden = rows.length !== 0;
}

function renderPolicy() {
  const p = state.policy;
  $('policy-section').hidden = !p && state.role !== 'vehicle';
  const dl = $('policy');
  if (!p) { dl.replaceChildren(el('dt', {}, 'State'), el('dd', {}, 'no policy state heard')); return; }
  const rate = (hz) => (hz === null || hz === undefined) ? '–' : `${hz} /s`;
  const items = [
    ['Action', el('span', {class: `badge act-${p.action}`}, words(p.action).toUpperCase())],
    ['Rule', p.rule || '–'],
    ['Speed limit', p.speed_limit === null ? 'none' : `${p.speed_limit.toFixed(1)} m/s`],
    ['Deciding alert', p.source_id ? `${p.source_id} #${p.sequence}` : '–'],
    ['Distance', metres(p.distance_m)],
    ['Filter', p.enabled ? 'enabled' : 'DISABLED (pass-through)'],
    ['cmd_vel in / out', `${rate(p.cmd_in_hz)} / ${rate(p.cmd_out_hz)}`],
    ['Decided at', localTime(p.stamp)],
  ];
  dl.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function renderDiagnostics() {
  const list = [...diagnostics.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const drops = [];
  for (const d of list) {
    for (const [reason, n] of Object.entries(d.drops)) {
      if (n) drops.push(el('tr', {}, el('td', {}, d.name), el('td', {}, words(reason)), el('td', {}, n)));
    }
  }
  $('drops').tBodies[0].replaceChildren(...drops);
  $('drops').hidden = drops.length === 0;
  $('no-drops').hidden = drops.length !== 0;
  $('nodes').tBodies[0].replaceChildren(...list.map((d) => el('tr', {class: `level-${d.level}`},
    el('td', {}, d.name), el('td', {}, el('span', {class: `badge level-${d.level}`}, d.level.toUpperCase())),
    el('td', {}, d.message),
    el('td', {class: 'values'}, Object.entries(d.values).map(([k, v]) => `${k}=${v}`).join('  ')))));
  const c = state.counts;
  $('console-counts').textContent = `Console: ${c.alerts_received} alert versions heard, ` +
    `${c.alerts_expired} expired, ${c.alerts_cancelled} cancelled, ${c.alerts_late} arrived expired` +
    (c.alerts_invalid ? `, ${c.alerts_invalid} INVALID (non-finite times)` : '') +
    (c.alerts_overflow ? `, ${c.alerts_overflow} NOT SHOWN (overflow)` : '') + '.';
}

function renderArchive() {
  const rows = state.archive.map((c) => {
    const verify = el('button', {type: 'button', onclick: (ev) => verifyClip(c, ev.target)}, 'Verify');
    const play = c.video ? el('button', {type: 'button', 'data-play': c.stem,
      onclick: () => playClip(c)}, 'Play') : '';
    const links = [];
    if (c.video) links.push(el('a', {href: `/archive/${encodeURIComponent(c.video)}?download=true`, download: c.video}, 'Video'));
    if (c.sidecar) links.push(el('a', {href: `/archive/${encodeURIComponent(c.sidecar)}?download=true`, download: c.sidecar}, 'Sidecar'));
    links.push(el('a', {href: `/api/archive/${encodeURIComponent(c.stem)}/export`, download: `${c.stem}.evidence.tar`}, 'Export'));
    const hold = el('button', {type: 'button', onclick: () => holdClip(c)}, c.held ? 'Release' : 'Hold');
    const signature = {verified: '✓ signed', bad: '✗ signature bad'}[c.signature] || 'unsigned';
    return el('tr', {'data-stem': c.stem},
      el('td', {}, localTime(c.t0, true)),
      el('td', {}, c.clip_id || c.stem, c.error ? el('div', {class: 'bad'}, c.error) : null),
      el('td', {}, `${localTime(c.window_start)} – ${localTime(c.window_end)}`),
      el('td', {}, c.duration_s === null ? '–' : `${c.duration_s.toFixed(1)} s`,
        c.expected_duration_s ? ` of ${c.expected_duration_s.toFixed(1)} s` : ''),
      el('td', {}, c.gaps.length ? c.gaps.join(', ') : 'none'),
      el('td', {class: 'sha'}, c.sha256 ? c.sha256.slice(0, 16) + '…' : '–',
        el('span', {class: 'verify-result'})),
      el('td', {class: `signature ${{verified: 'good', bad: 'bad'}[c.signature] || ''}`}, signature,
        c.held ? el('div', {class: 'held'}, `held by ${c.hold_by}: ${c.hold_why}`) : null),
      el('td', {class: 'buttons'}, play, verify, hold, ...links));
  });
  $('archive').tBodies[0].replaceChildren(...rows);
  $('archive').hidden = rows.length === 0;
  $('no-clips').hidden = rows.length !== 0;
}

function playClip(c) {
  const video = $('player');
  $('player-box').hidden = false;
  video.src = `/archive/${encodeURIComponent(c.video)}`;
  video.dataset.stem = c.stem;
  $('player-caption').textContent = `${c.clip_id || c.stem}, T0 ${localTime(c.t0, true)}`;
  video.play().catch(() => {});  // autoplay may be refused: the controls remain
  video.focus();
}

async function holdClip(c) {
  const reason = window.prompt(c.held ? 'Why release the legal hold?' : 'Why put a legal hold on this clip?');
  if (!reason) return;
  if (await post(`/api/archive/${encodeURIComponent(c.stem)}/hold`, {reason, release: c.held})) {
    state.archive = await (await fetch('/api/archive')).json();  // holds live in the log
    renderArchive();
  }
}

async function verifyClip(c, button) {
  const cell = button.closest('tr').querySelector('.verify-result');
  cell.textContent = ' checking…';
  try {
    const r = await fetch(`/api/archive/${encodeURIComponent(c.stem)}/verify`);
    const j = await r.json();
    cell.textContent = j.ok ? ' ✓ verified' : ` ✗ ${j.detail || j.error}`;  // 429: busy
    cell.className = `verify-result ${j.ok ? 'good' : 'bad'}`;
  } catch (e) {
    cell.textContent = ` ✗ ${e}`;
  }
}

// --- actions --------------------------------------------------------------------------------
function authHeader() { return sessionStorage.getItem('v2x-console-auth') || ''; }

function showLogin() {
  $('login-state').textContent = authHeader() ? 'credentials set' : 'not signed in';
  const off = !state.actions;
  for (const id of ['inject-button', 'clip-button']) $(id).disabled = off;
  for (const id of ['login', 'inject', 'clip-form']) $(id).hidden = state.role !== 'rsu';
  $('actions-off').textContent = off ? (state.role === 'rsu'
    ? 'Actions are off: this console has no token or password file.'
    : 'Actions run on the RSU console only.') : '';
}

async function post(url, body) {
  const out = $('action-result');
  out.textContent = 'sending…';
  out.className = '';
  const headers = {'Content-Type': 'application/json', 'X-V2X-Console': '1'};
  if (authHeader()) headers.Authorization = authHeader();
  try {
    const r = await fetch(url, {method: 'POST', headers, body: JSON.stringify(body || {}),
      credentials: 'omit'});
    const j = await r.json();
    out.textContent = r.ok ? `OK: ${JSON.stringify(j)}` : `Refused (${r.status}): ${j.detail || JSON.stringify(j)}`;
    out.className = r.ok ? 'good' : 'bad';
    return r.ok;
  } catch (e) {
    out.textContent = `Failed: ${e}`;
    out.className = 'bad';
    return false;
  }
}

function cancelAlert(a) {
  return post(`/api/alerts/${encodeURIComponent(a.source_id)}/${a.sequence}/cancel`);
}

function numberOrNull(id) { const v = $(id).value; return v === '' ? null : Number(v); }

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = $('token').value.trim();
  const user = $('user').value, password = $('password').value;
  let header = '';
  if (token) header = `Bearer ${token}`;
  else if (user) header = `Basic ${btoa(unescape(encodeURIComponent(`${user}:${password}`)))}`;
  sessionStorage.setItem('v2x-console-auth', header);
  $('token').value = $('password').value = '';
  showLogin();
});
$('logout').addEventListener('click', () => { sessionStorage.removeItem('v2x-console-auth'); showLogin(); });
$('inject').addEventListener('submit', (ev) => {
  ev.preventDefault();
  post('/api/alerts', {type: $('i-type').value, severity: $('i-severity').value,
    suggest: $('i-suggest').value, distance_m: numberOrNull('i-distance'), road: $('i-road').value,
    lat: numberOrNull('i-lat'), lon: numberOrNull('i-lon'), ttl_s: numberOrNull('i-ttl') || 0,
    clip: $('i-clip').checked});
});
$('clip-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('c-time').value ? new Date($('c-time').value).getTime() / 1000 : serverNow();
  post('/api/clips', {t0: t, pre_s: numberOrNull('c-pre') || 0, post_s: numberOrNull('c-post') || 0});
});

// --- events held for an operator (hazard_detector's confirmation) -------------------------------
function renderHeld() {
  const waiting = [...held.values()].filter((h) => h.waiting)
    .sort((a, b) => a.deadline - b.deadline);
  const decided = [...held.values()].filter((h) => !h.waiting)
    .sort((a, b) => b.updated_at - a.updated_at);
  for (const h of decided.slice(MAX_DECIDED_SHOWN)) held.delete(h.id);
  const off = !state.actions;
  const items = [...waiting, ...decided.slice(0, MAX_DECIDED_SHOWN)].map((h) => {
    const snapshot = h.snapshot ? el('img', {class: 'held-snapshot',
      src: `/api/held/snapshot.jpg?id=${encodeURIComponent(h.id)}`,
      alt: `the frame of the held ${words(h.kind)} event, its boxes drawn`}) : null;
    const buttons = h.waiting ? el('div', {class: 'buttons'},
      el('button', {type: 'button', 'data-confirm': h.id, disabled: off,
        onclick: () => post('/api/held/confirm', {id: h.id})}, 'Confirm'),
      el('button', {type: 'button', class: 'danger', 'data-dismiss': h.id, disabled: off,
        onclick: () => post('/api/held/dismiss', {id: h.id})}, 'Dismiss')) : null;
    return el('li', {'data-held': h.id, class: h.waiting ? 'waiting' : 'decided'}, snapshot,
      el('div', {class: 'held-text'},
        el('div', {},
          el('strong', {class: 'kind'}, words(h.kind)),
          ` ${h.severity}, confidence ${h.confidence.toFixed(2)} (held below ${h.threshold})`),
        el('div', {class: 'held-state'}, h.waiting
          ? el('span', {class: 'held-countdown', 'data-deadline': h.deadline}, 'waiting')
          : words(h.state)),
        el('div', {class: 'held-source'}, h.source_id),
        el('div', {class: 'held-road'}, h.road || '–'),
        el('div', {class: 'held-id note'}, h.id),
        el('div', {class: 'held-note'}, h.note),
        el('div', {class: 'note'}, `detected ${localTime(h.detection_time, true)}`),
        buttons));
  });
  $('held').replaceChildren(...items);
  $('no-held').hidden = items.length !== 0;
  $('held-count').textContent = waiting.length ? `(${waiting.length} waiting)` : '';
  tick();
}

// --- live stream ------------------------------------------------------------------------------
function renderAll() {
  $('role').textContent = state.role === 'vehicle' ? '· vehicle' : '· RSU';
  renderAlerts(); renderPeers(); renderPolicy(); renderDiagnostics(); renderArchive(); showLogin();
  renderHeld(); renderLatency();
}

// --- every alert's latency, per stage and hop (docs/metrics.md) -------------------------------
function renderLatency() {
  const rows = state.latency || [];
  const ms = (v) => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(1));
  $('latency').tBodies[0].replaceChildren(...rows.map((r) => el('tr', {},
    el('td', {}, r.what), el('td', {}, r.path), el('td', {}, r.count),
    el('td', {}, ms(r.p50_ms)), el('td', {}, ms(r.p99_ms)))));
  $('latency').hidden = rows.length === 0;
  $('no-latency').hidden = rows.length !== 0;
}

function connect() {
  const source = new EventSource('/api/events');
  const live = $('live');
  source.onopen = () => { live.textContent = 'LIVE'; live.className = 'good'; };
  source.onerror = () => {
    live.textContent = 'RECONNECTING (data may be old)'; live.className = 'bad';
    // refused (429: too many streams) or an HTTP error: EventSource gives up; try again
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  };
  const on = (kind, fn) => source.addEventListener(kind, (ev) => fn(JSON.parse(ev.data)));
  on('snapshot', (s) => {
    state = s; offsetMs = s.now * 1000 - Date.now();
    alerts.clear(); for (const a of s.alerts) alerts.set(a.id, a);
    diagnostics.clear(); for (const d of s.diagnostics) diagnostics.set(d.name, d);
    held.clear(); for (const h of s.held || []) held.set(h.id, h);
    renderAll();
  });
  on('alert', (a) => { if (a.expires_at > serverNow()) alerts.set(a.id, a); renderAlerts(); });
  on('alert_removed', (r) => { alerts.delete(r.id); renderAlerts(); });
  on('peers', (p) => { state.peers = p; renderPeers(); });
  on('policy', (p) => { state.policy = p; renderPolicy(); });
  on('diagnostics', (d) => { diagnostics.set(d.name, d); renderDiagnostics(); });
  on('archive', (a) => { state.archive = a; renderArchive(); });
  on('counts', (c) => { state.counts = c; renderDiagnostics(); });
  on('position', (p) => { state.position = p; renderMap(); });
  on('held', (h) => { held.set(h.id, h); renderHeld(); });
  on('latency', (rows) => { state.latency = rows; renderLatency(); });
}

renderAll();
tick();
setInterval(tick, 1000);
connect();
