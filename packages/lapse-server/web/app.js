// Lapse console: live figures, charts, connections, users and devices, sessions, jobs, keys.
// The admin key lives in sessionStorage (this tab only) and goes out as Authorization: Bearer.
import { Charts } from './charts.js';
import { openFeed } from './feed.js';

const KEY_SLOT = 'lapse.adminKey';
const $ = (sel) => document.querySelector(sel);
const VIEWS = ['overview', 'connections', 'users', 'sessions', 'jobs', 'keys'];

const state = {
  key: sessionStorage.getItem(KEY_SLOT),
  feed: null,
  view: 'overview',
  figures: null,
  charts: new Charts(360),
  conn: { user: '', room: '', rows: [] },
  users: { prefix: '', cursors: [null], next: null, rows: [], selected: null },
  devices: { rows: [], sort: { key: 'lastAccessedAt', dir: -1 } },
  sessions: { prefix: '', limit: 25, cursors: [null], next: null, rows: [], sort: { key: null, dir: 1 } },
  jobs: [],
  node: '',
};
// For tests and debugging: the data behind the charts.
window.lapseConsole = { charts: state.charts };

// ---------- helpers ----------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  if (res.status === 204) return null;
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, json?.error?.code, json?.error?.message ?? res.statusText);
  return json;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const td = (text, cls) => el('td', { class: cls, text: text ?? '–' });
const time = (ms) => (ms ? new Date(ms).toLocaleString() : '–');
function ago(ms) {
  if (!ms) return '–';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
const short = (id) => (id ? (id.length > 12 ? `${id.slice(0, 12)}…` : id) : '–');

function notice(text, bad = false) {
  const n = $('#notice');
  n.textContent = text;
  n.className = bad ? 'notice bad' : 'notice';
}

async function act(label, fn) {
  try {
    await fn();
    notice(label);
  } catch (err) {
    notice(`${label} failed: ${err.message}`, true);
  }
}

/** Debounced refresh per view, so a burst of pushes is one request. */
const timers = {};
function soon(name, fn, ms = 50) {
  clearTimeout(timers[name]);
  timers[name] = setTimeout(fn, ms);
}

// ---------- sign in / out ----------

async function signIn(key) {
  state.key = key;
  try {
    state.figures = await api('GET', '/v1/console/figures');
  } catch (err) {
    state.key = null;
    sessionStorage.removeItem(KEY_SLOT);
    const msg = err.status === 401 ? 'Key not accepted.' : err.status === 403 ? 'This is an app key; the console needs the admin key.' : `Could not sign in: ${err.message}`;
    $('#login-error').textContent = msg;
    return false;
  }
  sessionStorage.setItem(KEY_SLOT, key);
  $('#login-error').textContent = '';
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#signout').hidden = false;
  renderFigures(state.figures);
  startFeed();
  show(viewFromHash());
  document.getElementById(`h-${state.view}`)?.focus();
  return true;
}

function signOut() {
  state.feed?.stop();
  state.feed = null;
  state.key = null;
  sessionStorage.removeItem(KEY_SLOT);
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#signout').hidden = true;
  setLive('not signed in', '');
  $('#key').value = '';
  $('#key').focus();
}

function setLive(text, cls) {
  const pill = $('#live');
  pill.textContent = text;
  pill.className = `pill ${cls}`;
}

function startFeed() {
  state.feed?.stop();
  state.feed = openFeed(
    state.key,
    {
      figures: (f) => {
        const before = state.figures;
        renderFigures(f);
        // Changes made on other nodes arrive only as figures: refresh what they may show.
        if (before && (before.sessions !== f.sessions || before.users !== f.users)) refreshSessionViews();
        if (before && before.connections !== f.connections && state.view === 'connections') soon('conn', loadConnections);
      },
      series: (s) => state.charts.reset(s.points, s.capacity),
      point: (p) => state.charts.add(p),
      connections: () => {
        if (state.view === 'connections') soon('conn', loadConnections);
        if (state.view === 'users' && state.users.selected) soon('devices', loadDevices);
      },
      sessions: () => refreshSessionViews(),
      jobs: (j) => {
        state.jobs = j.jobs;
        if (state.view === 'jobs') renderJobs();
      },
    },
    (s) => {
      if (s === 'live') setLive('live', 'live');
      else if (s === 'refused') signOut();
      else setLive('reconnecting…', 'down');
    },
  );
}

function refreshSessionViews() {
  if (state.view === 'sessions') soon('sessions', loadSessions);
  if (state.view === 'users') {
    soon('users', loadUsers);
    if (state.users.selected) soon('devices', loadDevices);
  }
}

// ---------- views ----------

function viewFromHash() {
  const v = location.hash.slice(1);
  return VIEWS.includes(v) ? v : 'overview';
}

function show(view) {
  state.view = view;
  for (const v of VIEWS) {
    $(`#view-${v}`).hidden = v !== view;
    const link = document.querySelector(`nav a[data-view="${v}"]`);
    if (v === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (view === 'overview') requestAnimationFrame(() => state.charts.mount());
  if (view === 'connections') loadConnections();
  if (view === 'users') loadUsers();
  if (view === 'sessions') loadSessions();
  if (view === 'jobs') loadJobs();
  if (view === 'keys') loadKeys();
  else $('#new-key').hidden = true;
}

function renderFigures(f) {
  state.figures = f;
  for (const dd of document.querySelectorAll('[data-stat]')) {
    const v = f[dd.dataset.stat];
    dd.textContent = v === undefined ? '–' : String(v);
  }
  if (f.node) {
    state.node = f.node;
    $('#node').textContent = `node ${f.node}${f.nodes > 1 ? ` (${f.nodes} nodes)` : ''}`;
  }
}

// ---- connections ----

async function loadConnections() {
  const q = new URLSearchParams();
  if (state.conn.user) q.set('user', state.conn.user);
  if (state.conn.room) q.set('room', state.conn.room);
  try {
    const r = await api('GET', `/v1/console/connections?${q}`);
    state.conn.rows = r.connections;
    const nodes = r.nodes > 1 ? ` from ${r.answered} of ${r.nodes} nodes` : ` on node ${r.node}`;
    $('#conn-summary').textContent = `${r.connections.length} of ${r.total} matching shown${nodes}; ${r.clusterTotal} live in all.`;
    renderConnections();
  } catch (err) {
    notice(`Connections: ${err.message}`, true);
  }
}

function renderConnections() {
  const body = $('#connections');
  body.replaceChildren(
    ...state.conn.rows.map((c) =>
      el(
        'tr',
        { 'data-sid': c.sid },
        td(c.userId ?? 'anonymous'),
        el('td', { class: 'id', title: c.sessionId ?? '' , text: short(c.sessionId) }),
        td(c.rooms.length ? c.rooms.join(', ') : '–'),
        td(c.ip),
        td(time(c.connectedAt)),
        el('td', { 'data-since': c.lastActivityAt, text: ago(c.lastActivityAt) }),
        td(c.node),
        el('td', {}, el('button', { type: 'button', class: 'danger', 'aria-label': `Disconnect ${c.sid}`, text: 'Disconnect', onclick: () => disconnect(c.sid) })),
      ),
    ),
  );
  if (state.conn.rows.length === 0) body.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No live connection matches.' })));
}

function disconnect(sid) {
  act(`Disconnected ${sid}`, async () => {
    await api('POST', `/v1/console/connections/${encodeURIComponent(sid)}/disconnect`);
    await loadConnections();
  });
}

// ---- users and devices ----

async function loadUsers() {
  const u = state.users;
  const q = new URLSearchParams({ prefix: u.prefix, limit: '25' });
  const cursor = u.cursors[u.cursors.length - 1];
  if (cursor) q.set('cursor', cursor);
  try {
    const r = await api('GET', `/v1/console/users?${q}`);
    u.rows = r.users;
    u.next = r.cursor;
    $('#users-note').textContent = r.exact ? 'This backend finds users by their full id only.' : '';
    renderUsers();
  } catch (err) {
    notice(`Users: ${err.message}`, true);
  }
}

function renderUsers() {
  const u = state.users;
  $('#users').replaceChildren(
    ...u.rows.map((r) =>
      el(
        'tr',
        { 'data-user': r.userId, class: u.selected === r.userId ? 'selected' : undefined },
        td(r.userId),
        td(String(r.sessions)),
        el('td', {}, el('button', { type: 'button', class: 'quiet', text: 'Devices', 'aria-label': `Devices of ${r.userId}`, onclick: () => selectUser(r.userId) })),
      ),
    ),
  );
  if (u.rows.length === 0) $('#users').append(el('tr', {}, el('td', { colspan: 3, class: 'muted', text: 'No user matches.' })));
  $('#users-prev').disabled = u.cursors.length <= 1;
  $('#users-next').disabled = !u.next;
  $('#users-page').textContent = `page ${u.cursors.length}`;
}

function selectUser(userId) {
  state.users.selected = userId;
  $('#devices-panel').hidden = false;
  $('#devices-title').textContent = `Devices of ${userId}`;
  loadDevices().then(() => $('#devices-table button')?.focus());
}

async function loadDevices() {
  const userId = state.users.selected;
  if (!userId) return;
  try {
    const r = await api('GET', `/v1/console/users/${encodeURIComponent(userId)}/devices`);
    state.devices.rows = r.devices;
    renderDevices();
  } catch (err) {
    notice(`Devices: ${err.message}`, true);
  }
}

function renderDevices() {
  const d = state.devices;
  const userId = state.users.selected;
  const rows = sorted(d.rows, d.sort);
  markSort('#devices-table', d.sort);
  $('#devices').replaceChildren(
    ...rows.map((s) =>
      el(
        'tr',
        { 'data-id': s.id },
        td(s.browser),
        td(s.os),
        td(s.device),
        td(s.ip),
        td(time(s.lastAccessedAt)),
        td(time(s.createdAt)),
        td(String(s.connections)),
        el(
          'td',
          {},
          el(
            'span',
            { class: 'actions' },
            el('button', { type: 'button', class: 'danger', text: 'Revoke', 'aria-label': `Revoke session ${s.id}`, onclick: () => revokeSession(s.id) }),
            rows.length > 1
              ? el('button', { type: 'button', class: 'quiet', text: 'Revoke all others', 'aria-label': `Keep only session ${s.id}`, onclick: () => revokeOthers(userId, s.id) })
              : null,
          ),
        ),
      ),
    ),
  );
  if (rows.length === 0) $('#devices').append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No live session.' })));
}

function revokeSession(id) {
  act(`Revoked session ${short(id)}`, async () => {
    await api('DELETE', `/v1/sessions/${encodeURIComponent(id)}`);
    refreshSessionViews();
  });
}

function revokeOthers(userId, keep) {
  act(`Revoked every other session of ${userId}`, async () => {
    await api('DELETE', `/v1/users/${encodeURIComponent(userId)}/sessions?except=${encodeURIComponent(keep)}`);
    refreshSessionViews();
  });
}

// ---- sessions ----

async function loadSessions() {
  const s = state.sessions;
  const q = new URLSearchParams({ prefix: s.prefix, limit: String(s.limit) });
  const cursor = s.cursors[s.cursors.length - 1];
  if (cursor) q.set('cursor', cursor);
  try {
    const r = await api('GET', `/v1/console/sessions?${q}`);
    s.rows = r.sessions;
    s.next = r.cursor;
    renderSessions();
  } catch (err) {
    notice(`Sessions: ${err.message}`, true);
  }
}

function renderSessions() {
  const s = state.sessions;
  markSort('#sessions-table', s.sort);
  $('#sessions').replaceChildren(
    ...sorted(s.rows, s.sort).map((r) =>
      el(
        'tr',
        { 'data-id': r.id },
        el('td', { class: 'id', text: r.id }),
        td(r.userId ?? '–'),
        td([r.browser, r.os].filter(Boolean).join(' / ') || '–'),
        td(r.ip),
        td(time(r.lastAccessedAt)),
        td(time(r.createdAt)),
        td(time(r.expiresAt)),
        el('td', {}, el('button', { type: 'button', class: 'danger', text: 'Revoke', 'aria-label': `Revoke session ${r.id}`, onclick: () => revokeSession(r.id) })),
      ),
    ),
  );
  if (s.rows.length === 0) $('#sessions').append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No session matches.' })));
  $('#sessions-prev').disabled = s.cursors.length <= 1;
  $('#sessions-next').disabled = !s.next;
  $('#sessions-page').textContent = `page ${s.cursors.length}`;
}

// ---- sorting ----

/** Rows in the order of one column (code-unit order for text, as the server orders ids); no key: the server's order. */
function sorted(rows, { key, dir }) {
  if (!key) return rows;
  return [...rows].sort((a, b) => {
    const x = a[key];
    const y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x) < String(y) ? -1 : 1) * dir;
  });
}

function markSort(table, { key, dir }) {
  for (const th of document.querySelectorAll(`${table} th[data-key]`)) {
    if (th.dataset.key === key) th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function sortable(table, sortState, render) {
  $(table).querySelector('thead').addEventListener('click', (e) => {
    const th = e.target.closest('th[data-key]');
    if (!th) return;
    const s = sortState();
    if (s.key === th.dataset.key) s.dir = -s.dir;
    else {
      s.key = th.dataset.key;
      s.dir = 1;
    }
    render();
  });
}

// ---- jobs ----

async function loadJobs() {
  try {
    const r = await api('GET', '/v1/console/jobs');
    state.jobs = r.jobs;
    renderJobs();
  } catch (err) {
    notice(`Jobs: ${err.message}`, true);
  }
}

function renderJobs() {
  $('#jobs').replaceChildren(
    ...state.jobs.map((j) =>
      el(
        'tr',
        { 'data-job': j.id },
        td(j.id),
        td(j.schedule),
        el('td', { 'data-last-run': j.lastRunAt ?? '', text: j.running ? 'running…' : time(j.lastRunAt) }),
        td(j.lastDurationMs === null ? '–' : `${j.lastDurationMs} ms`),
        j.lastError ? td(j.lastError, 'bad') : td(j.lastResult === undefined || j.lastResult === null ? '–' : JSON.stringify(j.lastResult), j.lastRunAt ? 'ok' : ''),
        td(time(j.nextRunAt)),
        el('td', { 'data-runs': '', text: String(j.runs) }),
        td(String(j.failures)),
        td(j.node),
        el('td', {}, el('button', { type: 'button', text: 'Run now', 'aria-label': `Run ${j.id} now`, disabled: j.running, onclick: () => runJob(j.id) })),
      ),
    ),
  );
  const runs = state.jobs.flatMap((j) => j.recent.map((r) => ({ ...r, id: j.id, node: j.node }))).sort((a, b) => b.at - a.at).slice(0, 20);
  $('#job-runs').replaceChildren(
    ...runs.map((r) =>
      el('li', { class: r.ok ? 'ok' : 'bad', text: `${time(r.at)} · ${r.id} · ${r.durationMs ?? '–'} ms · ${r.ok ? (r.result ?? 'ok') : `error: ${r.error}`} · ${r.node}` }),
    ),
  );
}

function runJob(id) {
  act(`Ran ${id}`, async () => {
    await api('POST', `/v1/jobs/${encodeURIComponent(id)}/run`);
    await loadJobs();
  });
}

// ---- keys ----

async function loadKeys() {
  try {
    const r = await api('GET', '/v1/keys');
    $('#keys').replaceChildren(
      ...r.keys.map((k) =>
        el(
          'tr',
          { 'data-key-id': k.id },
          td(k.name),
          el('td', { class: 'id', text: k.id }),
          td(k.kind),
          td(time(k.createdAt)),
          td(k.revokedAt ? time(k.revokedAt) : '–'),
          el(
            'td',
            {},
            k.kind === 'app' && !k.revokedAt
              ? el('button', { type: 'button', class: 'danger', text: 'Revoke', 'aria-label': `Revoke key ${k.name}`, onclick: () => revokeKey(k) })
              : null,
          ),
        ),
      ),
    );
  } catch (err) {
    notice(`Keys: ${err.message}`, true);
  }
}

function revokeKey(k) {
  if (!confirm(`Revoke the key ${k.name}? Apps using it stop working.`)) return;
  act(`Revoked key ${k.name}`, async () => {
    await api('DELETE', `/v1/keys/${encodeURIComponent(k.id)}`);
    await loadKeys();
  });
}

// ---------- wiring ----------

$('#login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn($('#key').value.trim());
});
$('#signout').addEventListener('click', signOut);
window.addEventListener('hashchange', () => {
  if (!state.key) return;
  show(viewFromHash());
  // Keyboard and screen-reader users land on the view they chose.
  document.getElementById(`h-${state.view}`)?.focus();
});
window.addEventListener('resize', () => soon('resize', () => state.view === 'overview' && state.charts.mount(), 150));

$('#conn-filter').addEventListener('submit', (e) => {
  e.preventDefault();
  state.conn.user = $('#conn-user').value.trim();
  state.conn.room = $('#conn-room').value.trim();
  loadConnections();
});
$('#conn-filter').addEventListener('reset', () => {
  state.conn.user = '';
  state.conn.room = '';
  setTimeout(loadConnections, 0);
});

$('#user-search').addEventListener('submit', (e) => {
  e.preventDefault();
  Object.assign(state.users, { prefix: $('#user-prefix').value.trim(), cursors: [null], next: null, selected: null });
  $('#devices-panel').hidden = true;
  loadUsers();
});
$('#users-next').addEventListener('click', () => {
  if (!state.users.next) return;
  state.users.cursors.push(state.users.next);
  loadUsers();
});
$('#users-prev').addEventListener('click', () => {
  if (state.users.cursors.length > 1) state.users.cursors.pop();
  loadUsers();
});

$('#session-search').addEventListener('submit', (e) => {
  e.preventDefault();
  Object.assign(state.sessions, { prefix: $('#session-prefix').value.trim(), limit: Number($('#session-limit').value), cursors: [null], next: null });
  loadSessions();
});
$('#sessions-next').addEventListener('click', () => {
  if (!state.sessions.next) return;
  state.sessions.cursors.push(state.sessions.next);
  loadSessions();
});
$('#sessions-prev').addEventListener('click', () => {
  if (state.sessions.cursors.length > 1) state.sessions.cursors.pop();
  loadSessions();
});
sortable('#sessions-table', () => state.sessions.sort, renderSessions);
sortable('#devices-table', () => state.devices.sort, renderDevices);

$('#key-create').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('#key-name').value.trim();
  act(`Created key ${name}`, async () => {
    const r = await api('POST', '/v1/keys', { name });
    $('#new-key-value').textContent = r.key;
    $('#new-key').hidden = false;
    $('#key-name').value = '';
    await loadKeys();
  });
});

// "Idle for" columns tick without a request.
setInterval(() => {
  for (const cell of document.querySelectorAll('[data-since]')) cell.textContent = ago(Number(cell.dataset.since));
}, 1000);

if (state.key) signIn(state.key);
else $('#key').focus();
