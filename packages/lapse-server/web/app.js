// The Lapse admin page: plain DOM, no build step. Every call sends the admin key as a
// Bearer header; nothing is ever put in a URL. Data is written with textContent only.
const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem('lapse-admin-key');
let cursor = null;

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 204) return null;
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(json.error?.message ?? `HTTP ${res.status}`);
    err.status = res.status;
    err.code = json.error?.code;
    throw err;
  }
  return json;
}

const time = (ms) => (ms ? new Date(ms).toLocaleString() : '—');

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.append(td);
  return td;
}

function button(label, onClick, cls) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener('click', onClick);
  return b;
}

function showError(err) {
  $('error').textContent = err ? `${err.code ?? 'error'}: ${err.message}` : '';
}

async function loadHealth() {
  const pill = $('health');
  try {
    const h = await api('GET', '/health');
    pill.textContent = `${h.status} · ${h.backend}`;
    pill.className = 'pill ok';
  } catch (err) {
    pill.textContent = err.status === 503 ? 'backend down' : 'error';
    pill.className = 'pill down';
    if (err.status === 401) throw err;
  }
}

async function loadStats() {
  const s = await api('GET', '/v1/stats');
  const c = await api('GET', '/health/connections').catch(() => null);
  const items = [
    ['sessions', s.sessions], ['users', s.users], ['locked', s.locked], ['created', s.created],
    ['expired', s.expired], ['evicted', s.evicted], ['revoked', s.revoked], ['rotated', s.rotated],
  ];
  if (c) items.push(['live connections', c.totalSessions], ['rooms', c.activeRooms]);
  const dl = $('stats');
  dl.replaceChildren(
    ...items.map(([label, value]) => {
      const div = document.createElement('div');
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = label;
      dd.textContent = String(value ?? 0);
      dd.dataset.stat = label;
      div.append(dt, dd);
      return div;
    }),
  );
}

function sessionRow(s) {
  const tr = document.createElement('tr');
  tr.dataset.id = s.id;
  cell(tr, s.id, 'id');
  cell(tr, s.userId ?? '—');
  cell(tr, s.status);
  cell(tr, time(s.createdAt));
  cell(tr, time(s.lastAccessedAt));
  cell(tr, time(s.expiresAt));
  cell(tr, String(s.accessCount));
  const td = cell(tr, '');
  td.append(
    button('Revoke', async () => {
      try {
        await api('DELETE', `/v1/sessions/${encodeURIComponent(s.id)}`);
        tr.remove();
        await loadStats();
      } catch (err) {
        showError(err);
      }
    }, 'danger'),
  );
  return tr;
}

async function loadSessions(append = false) {
  const q = new URLSearchParams({ limit: '50' });
  if (append && cursor) q.set('cursor', cursor);
  const page = await api('GET', `/v1/sessions?${q}`);
  cursor = page.cursor;
  const rows = page.sessions.map(sessionRow);
  if (append) $('sessions').append(...rows);
  else $('sessions').replaceChildren(...rows);
  $('more').hidden = !cursor;
}

async function loadJobs() {
  const { jobs } = await api('GET', '/v1/jobs');
  $('jobs').replaceChildren(
    ...jobs.map((j) => {
      const tr = document.createElement('tr');
      tr.dataset.job = j.id;
      cell(tr, j.id, 'id');
      cell(tr, j.schedule);
      cell(tr, String(j.runs)).dataset.runs = '';
      cell(tr, String(j.failures));
      cell(tr, time(j.lastRunAt));
      cell(tr, j.lastError ? `error: ${j.lastError}` : JSON.stringify(j.lastResult));
      cell(tr, time(j.nextRunAt));
      cell(tr, '').append(
        button('Run now', async () => {
          try {
            await api('POST', `/v1/jobs/${encodeURIComponent(j.id)}/run`);
            await Promise.all([loadJobs(), loadStats(), loadSessions()]);
          } catch (err) {
            showError(err);
          }
        }),
      );
      return tr;
    }),
  );
}

async function refresh() {
  showError(null);
  await loadHealth();
  await Promise.all([loadStats(), loadSessions(), loadJobs()]);
}

async function start() {
  try {
    await refresh();
    $('login').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
  } catch (err) {
    sessionStorage.removeItem('lapse-admin-key');
    key = null;
    $('login-error').textContent = err.status === 401 || err.status === 403 ? 'That key was not accepted (an admin key is needed).' : err.message;
  }
}

window.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    key = $('key').value.trim();
    $('key').value = '';
    sessionStorage.setItem('lapse-admin-key', key);
    $('login-error').textContent = '';
    start();
  });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem('lapse-admin-key');
    location.reload();
  });
  $('refresh').addEventListener('click', () => refresh().catch(showError));
  $('more').addEventListener('click', () => loadSessions(true).catch(showError));
  $('user-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = $('user-id').value.trim();
    try {
      const { sessions } = await api('GET', `/v1/users/${encodeURIComponent(id)}/sessions`);
      $('user-result').textContent = `${sessions.length} live session(s): ${sessions.map((s) => s.id).join(', ') || '—'}`;
    } catch (err) {
      showError(err);
    }
  });
  $('user-revoke').addEventListener('click', async () => {
    const id = $('user-id').value.trim();
    if (!id) return;
    try {
      const r = await api('DELETE', `/v1/users/${encodeURIComponent(id)}/sessions`);
      $('user-result').textContent = `revoked ${r?.revoked ?? 0} session(s)`;
      await refresh();
    } catch (err) {
      showError(err);
    }
  });
  if (key) start();
});
