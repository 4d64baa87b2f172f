// maglevd-frontend's page: one tab per maglevd, a card per frontend, live
// from the event stream. Everything maglevd names is set as text, never
// as markup.

const root = new URL('..', location.href);
// Credentials typed into the address bar stay out of every later request
// (fetch refuses URLs that carry them; the session cookie takes over).
root.username = '';
root.password = '';
const admin = location.pathname.replace(/\/+$/, '').endsWith('/admin');
const api = (p) => new URL(p, root).toString();

let state = null;          // the snapshot: { maglevds, consistency }
let scope = readCookie('maglev_scope');
const openCards = new Set((readCookie('maglev_open') || '').split('|').filter(Boolean));
let snapshotSeq = -1;
let epoch = null;
let loading = null;        // events that arrive while the snapshot loads
let es = null;
let csrf = null;
let lastTick = Date.now();
let logPaused = false;
const settling = new Map(); // "maglevd/frontend" → time until ‼️ may show

// ---- small helpers -------------------------------------------------------

function readCookie(name) {
  const m = document.cookie.split('; ').find((c) => c.startsWith(name + '='));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : null;
}
function writeCookie(name, value) {
  document.cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=31536000; SameSite=Strict`;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
// Sets a cell's text; a change after the first render flashes.
function put(node, text, cls) {
  text = String(text);
  if (cls !== undefined && node.dataset.cls !== cls) {
    if (node.dataset.cls) node.classList.remove(...node.dataset.cls.split(' '));
    if (cls) node.classList.add(...cls.split(' '));
    node.dataset.cls = cls;
  }
  if (node.textContent === text) return;
  const first = !node.hasAttribute('data-set');
  node.textContent = text;
  node.setAttribute('data-set', '');
  // The Web Animations API restarts a flash without forcing a layout (a
  // class toggle needs one per cell: seconds with 1,000 rows changing).
  // When many values change at once (a mass flap) the flashes would cost
  // more than they tell: at most MAX_FLASHES run at a time.
  if (!first && flashing < MAX_FLASHES) {
    flashing++;
    node.animate(FLASH, 900).onfinish = () => { flashing--; };
  }
}
const MAX_FLASHES = 64;
let flashing = 0;
const FLASH = [
  { transform: 'scale(1.35)', backgroundColor: '#fde047', boxShadow: '0 0 8px #fde047' },
  { transform: 'scale(1)', backgroundColor: 'transparent', boxShadow: 'none' },
];
function age(ms) {
  if (!ms) return '-';
  let s = Math.floor((Date.now() - ms) / 1000);
  if (s < 1) return 'now';
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts = [];
  for (const [u, n] of units) {
    if (s >= n || parts.length) {
      parts.push(Math.floor(s / n) + u);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  return parts.join('');
}
function toast(text, bad) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = bad ? 'toast error' : 'toast';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}
function current() {
  if (!state) return null;
  return state.maglevds.find((m) => m.name === scope) || state.maglevds[0] || null;
}
function seqOf(id) {
  const i = id ? id.lastIndexOf('-') : -1;
  return i < 0 ? null : [id.slice(0, i), Number(id.slice(i + 1))];
}

// ---- rendering -------------------------------------------------------------

function renderTabs() {
  const nav = document.getElementById('tabs');
  nav.replaceChildren(...state.maglevds.map((m) => {
    const b = el('button', { type: 'button', role: 'tab', 'data-maglevd': m.name,
      'aria-selected': String(m === current()), title: m.error || m.address,
      onclick: () => { scope = m.name; writeCookie('maglev_scope', scope); renderAll(); } },
    el('span', { class: 'dot ' + (m.connected ? 'up' : 'down') }), el('span', { text: m.name }));
    return b;
  }));
}

function renderVpp() {
  const m = current();
  const box = document.getElementById('vpp');
  if (!m) { box.replaceChildren(); return; }
  const v = m.vpp;
  const linked = m.connected && v && v.connected;
  const field = (label, value) => el('span', { class: 'field' }, label + ' ', el('b', { text: value }));
  box.replaceChildren(...[
    el('span', { class: 'badge ' + (m.connected ? 'connected' : 'disconnected'), id: 'maglevd-badge',
      text: m.connected ? 'maglevd' : 'maglevd down' }),
    el('span', { class: 'badge ' + (linked ? 'connected' : 'disconnected'), id: 'vpp-badge',
      text: linked ? 'VPP' : 'VPP down' }),
    m.connected ? null : field('error', m.error || ''),
    v && v.version ? field('version', v.version) : null,
    v && v.pid ? field('pid', v.pid) : null,
    v && v.boottime_unix_ms ? field('up', age(v.boottime_unix_ms)) : null,
    v && !v.connected && v.error ? field('vpp', v.error) : null,
    el('span', { class: 'api', id: 'api-pulse', text: 'API: ↑↓' }),
  ].filter(Boolean));
}

// A divergence younger than this is peers catching up with a change.
const SETTLE_MS = 3000;
function verdict(c) {
  if (c.consistent) return 'consistent';
  return Date.now() - (c.diverged_since_unix_ms || 0) < SETTLE_MS ? 'settling' : 'diverged';
}

function renderConsistency() {
  const box = document.getElementById('consistency');
  const rows = (state && state.consistency) || [];
  box.hidden = rows.length === 0;
  if (!rows.length) { box.replaceChildren(); return; }
  const names = state.maglevds.map((m) => m.name);
  const table = el('table', {},
    el('thead', {}, el('tr', {}, el('th', { text: 'VIP' }), el('th', { text: 'tables' }),
      el('th', { text: 'differing backends (buckets per maglevd)' }))),
    el('tbody', {}, ...rows.map((c) => el('tr', { 'data-vip': c.vip },
      el('td', { text: c.vip + ' (' + Object.values(c.frontends).join(', ') + ')' }),
      el('td', {}, el('span', { class: 'badge ' + verdict(c), text: verdict(c) })),
      el('td', { class: c.consistent ? '' : 'bad', text: c.differing.map((d) => d.backend + ' ' +
        names.filter((n) => n in d.buckets).map((n) => n + '=' + d.buckets[n]).join(' ')).join('; ') }),
    ))));
  box.replaceChildren(el('h2', { text: 'Consistency across maglevds' }), table);
}

function healthIcon(m, f) {
  if (f.state === 'unknown') return ['❓', 'state unknown'];
  if (f.state === 'down') return ['❗', 'nothing serves'];
  if (f.state === 'panic') return ['❗', 'failing open (panic)'];
  const key = m.name + '/' + f.name;
  const settled = (settling.get(key) || 0) < Date.now();
  if (settled && m.lb) {
    for (const p of f.pools) for (const b of p.backends) {
      if (b.buckets == null) continue;
      if ((b.effective_weight > 0) !== (b.buckets > 0)) return ['‼️', 'VPP disagrees with maglevd about ' + b.name];
    }
  }
  const active = f.pools[f.active_pool];
  if (f.active_pool > 0 || (active && active.backends.some((b) => b.state !== 'up'))) {
    return ['⚠️', 'degraded'];
  }
  return ['✅', 'healthy'];
}

// name → backend, per maglevd; rebuilt when its list is replaced.
const backendMaps = new WeakMap();
function backendOf(m, name) {
  let map = backendMaps.get(m.backends);
  if (!map) {
    map = new Map(m.backends.map((b) => [b.name, b]));
    backendMaps.set(m.backends, map);
  }
  return map.get(name);
}

// Cards to redraw at the next frame: a burst of events costs one redraw
// per card, however many events it held.
const dirty = new Map(); // frontend name → rows to update (null: all)
let frame = 0;
function schedule(m, f, keys) {
  if (m !== current()) return;
  const had = dirty.has(f.name) ? dirty.get(f.name) : undefined;
  if (had === null || !keys) dirty.set(f.name, null);
  else dirty.set(f.name, new Set([...(had || []), ...keys]));
  if (!frame) frame = requestAnimationFrame(flush);
}
function flush() {
  frame = 0;
  const m = current();
  const work = [...dirty.entries()];
  dirty.clear();
  if (!m) return;
  for (const [name, keys] of work) {
    const f = m.frontends.find((x) => x.name === name);
    if (f) renderFrontend(m, f, keys);
  }
}

function cardKey(m, f) {
  return m.name + '/' + f.name;
}

function buildCard(m, f) {
  const key = cardKey(m, f);
  const card = el('details', { class: 'card', 'data-frontend': f.name });
  if (openCards.has(key)) card.open = true;
  card.addEventListener('toggle', () => {
    if (card.open) openCards.add(key); else openCards.delete(key);
    writeCookie('maglev_open', [...openCards].join('|'));
    const cm = current();
    const cf = cm && cm.frontends.find((x) => x.name === f.name);
    if (card.open && cf) updateCard(cm, cf, card, null);
  });
  const summary = el('summary', {},
    el('span', { class: 'fname', text: f.name, title: f.description || f.name }),
    el('span', { class: 'badge fstate' }),
    el('span', { class: 'icon' }),
    el('span', { class: 'vip', text: `${f.address} ${f.protocol}/${f.port}` }),
    el('span', { class: 'why' }),
    el('span', { class: 'desc', text: f.description }));
  const head = ['pool', 'backend', 'address', 'state', 'weight', 'effective', 'lb buckets', 'last transition', ''];
  if (admin) head.push('actions');
  const tbody = el('tbody');
  card.append(summary, el('table', { class: 'pool' },
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { text: h })))), tbody));
  return card;
}

function buildRow(m, f, pool, b) {
  const tr = el('tr', { 'data-backend': b.name, 'data-pool': pool.name });
  tr.append(
    el('td', { class: 'pool-name', text: pool.name }),
    el('td', { class: 'name', text: b.name }),
    el('td', { class: 'address', text: b.address }),
    el('td', {}, el('span', { class: 'state' })),
    el('td', { class: 'num weight' }),
    el('td', { class: 'num effective' }),
    el('td', { class: 'num buckets' }),
    el('td', { class: 'num age' }),
    el('td', { class: 'heart', text: '·' }));
  if (admin) {
    const act = (action, extra) => () => doAction(Object.assign({ maglevd: m.name, action, backend: b.name }, extra || {}));
    const input = el('input', { type: 'number', min: '0', max: '100', 'aria-label': 'weight' });
    tr.append(el('td', { class: 'actions' },
      el('button', { type: 'button', 'data-action': 'pause', text: 'pause', onclick: act('pause') }),
      el('button', { type: 'button', 'data-action': 'resume', text: 'resume', onclick: act('resume') }),
      el('button', { type: 'button', 'data-action': 'enable', text: 'enable', onclick: act('enable') }),
      el('button', { type: 'button', 'data-action': 'disable', text: 'disable', onclick: act('disable') }),
      input,
      el('button', { type: 'button', 'data-action': 'weight', text: 'set weight', onclick: () =>
        act('weight', { frontend: f.name, pool: pool.name, weight: Number(input.value) })() })));
  }
  return tr;
}

function rowKey(pool, backend) {
  return pool + '\u0000' + backend;
}

// Updates a card: its title always; its rows only while it is open (a
// closed card is redrawn in full when opened), and then only the rows in
// `keys` when given.
function updateCard(m, f, card, keys) {
  const [icon, title] = healthIcon(m, f);
  put(card.querySelector('.fstate'), f.state, 'badge fstate ' + f.state);
  const i = card.querySelector('.icon');
  if (i.textContent !== icon) i.textContent = icon;
  if (i.title !== title) i.title = title;
  put(card.querySelector('.why'), f.why);
  if (!card.open) {
    card.stale = true;
    return;
  }
  const shape = f.pools.map((p) => p.name + ':' + p.backends.map((b) => b.name).join(',')).join(';');
  if (card.shape !== shape) {
    const rows = new Map();
    const trs = [];
    for (const pool of f.pools) for (const b of pool.backends) {
      const tr = buildRow(m, f, pool, b);
      rows.set(rowKey(pool.name, b.name), {
        tr, state: tr.querySelector('.state'), weight: tr.querySelector('.weight'),
        effective: tr.querySelector('.effective'), buckets: tr.querySelector('.buckets'),
        age: tr.querySelector('.age'),
      });
      trs.push(tr);
    }
    card.querySelector('tbody').replaceChildren(...trs);
    card.rows = rows;
    card.shape = shape;
    keys = null;
  } else if (card.stale) {
    keys = null;
  }
  card.stale = false;
  for (const pool of f.pools) for (const b of pool.backends) {
    const key = rowKey(pool.name, b.name);
    if (keys && !keys.has(key)) continue;
    const r = card.rows.get(key);
    const be = backendOf(m, b.name);
    put(r.state, b.state, 'state ' + b.state);
    put(r.weight, b.configured_weight + (b.weight_overridden ? '*' : ''));
    put(r.effective, b.effective_weight + (b.slow_start_percent ? ` (${b.slow_start_percent}%)` : ''));
    put(r.buckets, b.buckets == null ? '-' : b.buckets);
    const at = be && be.last ? String(be.last.at_unix_ms) : '';
    if (r.age.dataset.at !== at) {
      r.age.dataset.at = at;
      r.age.textContent = age(Number(at));
      r.age.title = be && be.last ? `${be.last.from} → ${be.last.to} ${be.last.code} ${be.last.detail}` : '';
    }
  }
}

function renderFrontends() {
  const box = document.getElementById('frontends');
  const m = current();
  if (!m) { box.replaceChildren(el('p', { class: 'empty', text: 'no maglevd' })); return; }
  if (!m.frontends.length) {
    box.replaceChildren(el('p', { class: 'empty', text: m.connected ? 'no frontends' : 'waiting for ' + m.address }));
    return;
  }
  const cards = m.frontends.map((f) => {
    const c = buildCard(m, f);
    updateCard(m, f, c);
    return c;
  });
  box.replaceChildren(...cards);
}

function renderFrontend(m, f, keys) {
  if (m !== current()) return;
  const box = document.getElementById('frontends');
  const card = [...box.children].find((c) => c.dataset && c.dataset.frontend === f.name);
  if (card) updateCard(m, f, card, keys); else renderFrontends();
}

function renderAll() {
  if (!state) return;
  if (!current()) scope = null;
  renderTabs();
  renderVpp();
  renderConsistency();
  renderFrontends();
}

// ---- events ----------------------------------------------------------------

function logLine(text, level) {
  if (!admin) return;
  const list = document.getElementById('log-list');
  list.append(el('li', {}, el('span', { class: 'lvl-' + (level || 'info'), text })));
  while (list.children.length > 500) list.firstChild.remove();
  document.getElementById('log-count').textContent = list.children.length + ' events';
  if (!logPaused) list.scrollTop = list.scrollHeight;
}

function time(ms) {
  return new Date(ms || Date.now()).toISOString().slice(11, 23);
}

// The heartbeat: backend → until when its heart shows. One timer walks
// the hearts, however many probes report.
const beats = new Map();
let beatTimer = 0;
function beat() {
  beatTimer = 0;
  const now = Date.now();
  for (const td of document.querySelectorAll('#frontends details[open] td.heart')) {
    const until = beats.get(td.parentElement.dataset.backend) || 0;
    const want = until > now ? '❤️' : '·';
    if (td.textContent !== want) td.textContent = want;
  }
  for (const [k, v] of beats) if (v <= now) beats.delete(k);
  if (beats.size) beatTimer = setTimeout(beat, 200);
}

const handlers = {
  link(d) {
    const m = state.maglevds.find((x) => x.name === d.maglevd);
    if (!m) return;
    Object.assign(m, { connected: d.connected, error: d.error, since_unix_ms: d.since_unix_ms, vpp: d.vpp });
    renderTabs();
    if (m === current()) renderVpp();
    logLine(`${time()} ${d.maglevd} ${d.connected ? 'connected' : 'lost: ' + (d.error || '')}`, d.connected ? 'info' : 'warn');
  },
  maglevd(d) {
    const i = state.maglevds.findIndex((x) => x.name === d.maglevd);
    if (i < 0) return;
    state.maglevds[i] = d.state;
    renderAll();
  },
  frontend(d) {
    const m = state.maglevds.find((x) => x.name === d.maglevd);
    if (!m) return;
    const i = m.frontends.findIndex((f) => f.name === d.frontend.name);
    if (i < 0) return;
    const old = m.frontends[i];
    const weights = (f) => f.pools.map((p) => p.backends.map((b) => b.state + b.effective_weight).join()).join();
    if (weights(old) !== weights(d.frontend)) settling.set(cardKey(m, d.frontend), Date.now() + 3000);
    m.frontends[i] = d.frontend;
    schedule(m, d.frontend);
  },
  members(d) {
    const m = state.maglevds.find((x) => x.name === d.maglevd);
    const f = m && m.frontends.find((x) => x.name === d.frontend);
    if (!f) return;
    Object.assign(f, { state: d.state, why: d.why, active_pool: d.active_pool });
    let moved = false;
    const keys = [];
    for (const { pool, backend } of d.members) {
      keys.push(rowKey(pool, backend.name));
      const p = f.pools.find((x) => x.name === pool);
      const i = p ? p.backends.findIndex((b) => b.name === backend.name) : -1;
      if (i < 0) continue;
      const old = p.backends[i];
      moved ||= old.state !== backend.state || old.effective_weight !== backend.effective_weight;
      p.backends[i] = backend;
    }
    if (moved) settling.set(cardKey(m, f), Date.now() + 3000);
    schedule(m, f, keys);
  },
  backend(d) {
    const m = state.maglevds.find((x) => x.name === d.maglevd);
    if (!m) return;
    const old = backendOf(m, d.backend.name);
    if (!old) return;
    Object.assign(old, d.backend);
    if (m !== current()) return;
    for (const name of d.backend.frontends || []) {
      const f = m.frontends.find((x) => x.name === name);
      if (!f) continue;
      const keys = f.pools.filter((p) => p.backends.some((b) => b.name === d.backend.name))
        .map((p) => rowKey(p.name, d.backend.name));
      schedule(m, f, keys);
    }
  },
  consistency(d) {
    state.consistency = d;
    renderConsistency();
  },
  transition(d) {
    logLine(`${time(d.at_unix_ms)} ${d.maglevd} backend ${d.backend} ${d.from} → ${d.to} ${d.code} ${d.detail}`, d.to === 'down' ? 'warn' : 'info');
  },
  log(d) {
    const fields = Object.entries(d.fields || {}).map(([k, v]) => `${k}=${v}`).join(' ');
    logLine(`${time(d.at_unix_ms)} ${d.maglevd} ${d.level} ${d.message} ${fields}`, d.level);
  },
  probes(d) {
    const m = current();
    if (!m || m.name !== d.maglevd) return;
    const until = Date.now() + 600;
    for (const name of d.backends) beats.set(name, until);
    if (!beatTimer) beatTimer = setTimeout(beat, 0);
  },
  'vpp-api'(d) {
    const m = current();
    if (!m || m.name !== d.maglevd) return;
    const p = document.getElementById('api-pulse');
    if (!p) return;
    p.classList.add('pulse');
    clearTimeout(p.timer);
    p.timer = setTimeout(() => p.classList.remove('pulse'), 250);
  },
};

function onEvent(name, ev) {
  const d = JSON.parse(ev.data || '{}');
  if (name === 'resync') { loadState(); return; }
  if (loading) { loading.push([name, ev.lastEventId, d]); return; }
  apply(name, ev.lastEventId, d);
}

function apply(name, id, d) {
  const s = seqOf(id);
  // Already in the snapshot.
  if (s && ev_is_old(s)) return;
  if (state && handlers[name]) handlers[name](d);
}

function ev_is_old([e, n]) {
  return e === epoch && n <= snapshotSeq;
}

async function loadState() {
  loading = loading || [];
  try {
    const r = await fetch(api('view/api/state'), { cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    state = await r.json();
    const s = seqOf(state.last_event_id);
    [epoch, snapshotSeq] = s || [null, -1];
    renderAll();
    const pending = loading;
    loading = null;
    for (const [name, id, d] of pending) apply(name, id, d);
  } catch (e) {
    loading = null;
    toast('cannot read the state: ' + e.message, true);
    setTimeout(loadState, 2000);
  }
}

function connect() {
  if (es) es.close();
  es = new EventSource(api(admin ? 'admin/api/events' : 'view/api/events'));
  const names = ['resync', ...Object.keys(handlers)];
  for (const n of names) es.addEventListener(n, (ev) => onEvent(n, ev));
  const dot = document.getElementById('stream');
  es.onopen = () => { dot.classList.add('live'); dot.title = 'event stream: live'; };
  es.onerror = () => { dot.classList.remove('live'); dot.title = 'event stream: reconnecting'; };
  loadState();
}

async function doAction(body) {
  try {
    if (!csrf) await session();
    const r = await fetch(api('admin/api/action'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body),
    });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(out.error || r.statusText);
    toast(`${body.action} ${body.backend}: done`);
  } catch (e) {
    toast(`${body.action} ${body.backend}: ${e.message}`, true);
  }
}

async function session() {
  const r = await fetch(api('admin/api/session'), { cache: 'no-store' });
  if (!r.ok) throw new Error('no admin session (' + r.status + ')');
  csrf = (await r.json()).csrf;
}

// One ticker: ages, and a watchdog that notices the laptop slept (the
// timer stalled) and starts the stream afresh instead of trusting a
// half-open socket.
setInterval(() => {
  const now = Date.now();
  if (now - lastTick > 5000) connect();
  lastTick = now;
  for (const a of document.querySelectorAll('details[open] td.age')) {
    if (!a.dataset.at) continue;
    const t = age(Number(a.dataset.at));
    if (a.textContent !== t) a.textContent = t;
  }
  if (state && state.consistency.some((c) => !c.consistent)) renderConsistency();
}, 1000);

document.getElementById('log').hidden = !admin;
document.getElementById('log-pause').addEventListener('click', (e) => {
  logPaused = !logPaused;
  e.target.textContent = logPaused ? 'resume' : 'pause';
});
fetch(api('view/api/version')).then((r) => r.json()).then((v) => {
  document.getElementById('version').textContent = `maglevd-frontend ${v.version} (${v.commit})` + (admin ? ' · admin' : '');
}).catch(() => {});
if (admin) session().catch((e) => toast(e.message, true));
connect();
