/**
 * The dashboard's script, served as `dashboard.js`. Plain ES2017, no build step. It writes data
 * with `textContent` only (never `innerHTML`), reconnects with backoff and resumes from its last seq.
 */
export const DASHBOARD_SCRIPT = String.raw`(function () {
  'use strict';
  var wsPath = document.querySelector('meta[name="progress-ws-path"]').getAttribute('content') || '/ws';
  var token = new URLSearchParams(location.search).get('token');
  var wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + wsPath + (token ? '?token=' + encodeURIComponent(token) : '');
  // A malformed hash (#%E0) must not stop the page: it just selects nothing.
  var hashId = function () { try { return decodeURIComponent(location.hash.slice(1)); } catch (e) { return ''; } };
  var ws = null, retry = 0, selected = hashId() || null, state = null, rows = [], events = [], listTimer = null;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function pct(n) { return (Math.round((Number(n) || 0) * 10) / 10) + '%'; }
  function bar(value, status, big) {
    var b = el('div', 'bar' + (big ? ' big' : '') + (status ? ' ' + status : ''));
    var f = el('div');
    var v = Math.max(0, Math.min(100, Number(value) || 0));
    f.style.width = v + '%';
    b.setAttribute('role', 'progressbar');
    b.setAttribute('aria-valuemin', '0');
    b.setAttribute('aria-valuemax', '100');
    b.setAttribute('aria-valuenow', String(v));
    b.appendChild(f);
    return b;
  }
  function badge(status) { return el('span', 'badge ' + String(status).replace(/[^a-z_]/g, ''), String(status).replace('_', ' ')); }
  function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }
  function setConn(text, live) { var c = $('conn'); c.textContent = text; c.className = live ? 'live' : 'down'; }
  function fmtTime(iso) { if (!iso) return '-'; var d = new Date(iso); return isNaN(d) ? '-' : d.toLocaleTimeString(); }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || ms < 0) return '-';
    var s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
  }

  // ---- a small reducer: enough to follow live events between snapshots
  function recompute(s) {
    var tasks = s.tasks, ids = Object.keys(tasks);
    function mean(list) {
      var w = 0, sum = 0;
      list.forEach(function (t) { if (t.status === 'skipped' || t.status === 'cancelled') return; var wt = t.weight || 1; w += wt; sum += wt * value(t); });
      return w ? sum / w : 0;
    }
    function children(id) { return ids.map(function (k) { return tasks[k]; }).filter(function (t) { return t.parentTaskId === id; }); }
    function value(t) {
      if (t.status === 'completed') return 100;
      var kids = children(t.taskId);
      if (kids.length) { t.percentage = Math.round(mean(kids) * 100) / 100; }
      return t.percentage || 0;
    }
    var top = ids.map(function (k) { return tasks[k]; }).filter(function (t) { return !t.parentTaskId; });
    s.overallPercentage = s.status === 'completed' ? 100 : Math.round(mean(top) * 100) / 100;
  }
  function apply(s, e) {
    var d = e.details || {};
    s.lastSeq = e.seq;
    s.updatedAt = e.timestamp;
    if (e.type.indexOf('upgrade.') === 0) {
      s.status = e.status;
      if (typeof d.phase === 'string') s.currentPhase = d.phase;
      if (e.type === 'upgrade.started' && !s.startedAt) s.startedAt = e.timestamp;
      if (e.type === 'upgrade.completed' || e.type === 'upgrade.failed' || e.type === 'upgrade.cancelled') s.completedAt = e.timestamp;
      if (e.type === 'upgrade.failed') s.errorMessage = d.errorMessage || e.message;
    } else if (e.taskId) {
      var t = s.tasks[e.taskId];
      if (e.type === 'task.added') {
        t = s.tasks[e.taskId] = { taskId: e.taskId, taskName: d.taskName || e.taskId, taskType: e.taskType, parentTaskId: d.parentTaskId || null,
          status: 'not_started', percentage: 0, weight: d.weight || 1, totalSteps: d.totalSteps || null, completedSteps: 0, currentStep: null, errorMessage: null, recentEvents: [] };
      }
      if (!t) return;
      t.status = e.status;
      if (typeof e.percentage === 'number') t.percentage = e.percentage;
      if (e.type === 'task.completed') t.percentage = 100;
      if (typeof d.currentStep === 'string') t.currentStep = d.currentStep;
      if (typeof d.completedSteps === 'number') t.completedSteps = d.completedSteps;
      if (e.type === 'task.failed') t.errorMessage = d.errorMessage || e.message;
      if (e.type === 'task.retried') t.errorMessage = null;
    }
    recompute(s);
  }

  // ---- rendering (textContent only)
  function renderList() {
    var ul = $('upgrades');
    clear(ul);
    if (!rows.length) { ul.appendChild(el('li', 'empty', 'No upgrades yet')); return; }
    rows.forEach(function (r) {
      var li = el('li', r.upgradeId === selected ? 'selected' : '');
      var top = el('div', 'row');
      top.appendChild(el('span', 'id', r.upgradeId));
      top.appendChild(badge(r.status));
      li.appendChild(top);
      li.appendChild(el('span', 'muted', r.clusterName + (r.currentPhase ? ' \u00b7 ' + r.currentPhase : '')));
      li.appendChild(bar(r.overallPercentage, r.status));
      li.addEventListener('click', function () { select(r.upgradeId); });
      ul.appendChild(li);
    });
  }
  function fact(parent, label, value) {
    var d = el('div');
    d.appendChild(el('span', 'muted', label));
    d.appendChild(el('span', 'v', value));
    parent.appendChild(d);
  }
  function eta(s) {
    var p = s.overallPercentage;
    if (s.status !== 'in_progress' || !s.startedAt || p <= 0 || p >= 100) return '-';
    var spent = Math.max(0, Date.now() - Date.parse(s.startedAt));
    return fmtTime(new Date(Date.now() + spent * (100 - p) / p).toISOString());
  }
  function renderDetail() {
    var ov = $('overview'), tasksEl = $('tasks');
    clear(ov); clear(tasksEl);
    if (!state) { ov.appendChild(el('p', 'empty', selected ? 'Waiting for ' + selected + '\u2026' : 'Select an upgrade')); tasksEl.appendChild(el('p', 'empty', 'No tasks')); renderEvents(); return; }
    var head = el('div', 'row');
    head.appendChild(el('h2', 'title', state.upgradeId));
    head.appendChild(badge(state.status));
    ov.appendChild(head);
    var b = bar(state.overallPercentage, state.status, true);
    b.id = 'overall';
    ov.appendChild(b);
    var facts = el('div', 'facts');
    fact(facts, 'Overall', pct(state.overallPercentage));
    fact(facts, 'Phase', state.currentPhase || '-');
    fact(facts, 'Cluster', state.clusterName);
    fact(facts, 'Plan', state.planId);
    fact(facts, 'Started', fmtTime(state.startedAt));
    fact(facts, 'ETA', eta(state));
    fact(facts, 'Elapsed', state.startedAt ? fmtDuration((state.completedAt ? Date.parse(state.completedAt) : Date.now()) - Date.parse(state.startedAt)) : '-');
    fact(facts, 'Seq', state.lastSeq);
    ov.appendChild(facts);
    if (state.errorMessage) ov.appendChild(el('p', 'err', state.errorMessage));
    var ids = Object.keys(state.tasks);
    if (!ids.length) tasksEl.appendChild(el('p', 'empty', 'No tasks'));
    function addTask(t, depth) {
      var row = el('div', 'task');
      row.setAttribute('data-task-id', t.taskId);
      var name = el('span', 'name', t.taskName);
      name.style.paddingLeft = (depth * 18) + 'px';
      row.appendChild(name);
      row.appendChild(badge(t.status));
      row.appendChild(bar(t.percentage, t.status));
      row.appendChild(el('span', 'pct', pct(t.percentage)));
      if (t.currentStep) { var st = el('span', 'muted', t.currentStep); st.style.gridColumn = '1 / -1'; st.style.paddingLeft = (depth * 18) + 'px'; row.appendChild(st); }
      if (t.errorMessage) row.appendChild(el('span', 'err', t.errorMessage));
      tasksEl.appendChild(row);
      ids.forEach(function (k) { if (state.tasks[k].parentTaskId === t.taskId && depth < 8) addTask(state.tasks[k], depth + 1); });
    }
    ids.forEach(function (k) { var t = state.tasks[k]; if (!t.parentTaskId || !state.tasks[t.parentTaskId]) addTask(t, 0); });
    renderEvents();
  }
  function renderEvents() {
    var ul = $('events');
    clear(ul);
    events.slice().reverse().forEach(function (e) {
      var li = el('li');
      li.appendChild(el('span', 'seq', '#' + e.seq));
      li.appendChild(el('span', 'muted', fmtTime(e.timestamp)));
      li.appendChild(el('span', '', e.type));
      li.appendChild(el('span', '', e.message));
      ul.appendChild(li);
    });
  }
  var pending = false;
  function schedule() { if (pending) return; pending = true; requestAnimationFrame(function () { pending = false; renderDetail(); }); }

  // ---- protocol
  function select(id) {
    if (selected && selected !== id) send({ type: 'unsubscribe', upgradeId: selected });
    if (selected !== id) { state = null; events = []; }
    selected = id;
    history.replaceState(null, '', '#' + encodeURIComponent(id));
    subscribe();
    renderList();
    renderDetail();
  }
  function subscribe() {
    if (!selected) return;
    var msg = { type: 'subscribe', upgradeId: selected };
    if (state) msg.sinceSeq = state.lastSeq;
    send(msg);
  }
  function onMessage(ev) {
    var m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    switch (m.type) {
      case 'welcome': retry = 0; setConn('live', true); send({ type: 'list_upgrades' }); subscribe(); break;
      case 'upgrades':
        rows = Array.isArray(m.data) ? m.data : [];
        if (!selected && rows.length) select(rows[0].upgradeId); else renderList();
        break;
      case 'snapshot':
        if (m.upgradeId !== selected) break;
        state = m.data;
        // Task ids are free text ('__proto__' and 'constructor' are ids like any other): keep them in
        // an object without a prototype, so that every lookup and assignment is of a real task.
        var own = Object.create(null);
        Object.keys(state.tasks || {}).forEach(function (k) { own[k] = state.tasks[k]; });
        state.tasks = own;
        var all = [];
        Object.keys(state.tasks).forEach(function (k) { all = all.concat(state.tasks[k].recentEvents || []); });
        all.sort(function (a, b) { return a.seq - b.seq; });
        events = all.slice(-15);
        schedule();
        break;
      case 'progress_event':
        if (m.upgradeId !== selected) break;
        if (!state) { state = { upgradeId: m.upgradeId, planId: '', clusterName: '', status: 'not_started', tasks: Object.create(null), overallPercentage: 0, currentPhase: null, lastSeq: 0 }; }
        if (m.data.seq <= state.lastSeq) break;
        if (m.data.type === 'upgrade.created') { state.planId = m.data.details.planId; state.clusterName = m.data.details.clusterName; state.createdAt = m.data.timestamp; }
        apply(state, m.data);
        events.push(m.data);
        if (events.length > 15) events.shift();
        schedule();
        break;
      case 'resync': if (m.upgradeId === selected) { state = null; events = []; } break;
      case 'error': setConn('error: ' + m.message, true); break;
    }
  }
  function connect() {
    setConn(retry ? 'reconnecting' : 'connecting', false);
    try { ws = new WebSocket(wsUrl, ['progress.v1']); } catch (e) { return later(); }
    ws.onmessage = onMessage;
    ws.onclose = function () { setConn('disconnected', false); later(); };
  }
  function later() {
    ws = null;
    var delay = Math.min(5000, 250 * Math.pow(2, retry++)) + Math.floor(Math.random() * 250);
    setTimeout(connect, delay);
  }
  listTimer = setInterval(function () { send({ type: 'list_upgrades' }); }, 5000);
  setInterval(function () { if (state && state.status === 'in_progress') schedule(); }, 1000);
  window.addEventListener('hashchange', function () { var id = hashId(); if (id && id !== selected) select(id); });
  connect();
  void listTimer;
})();
`;
