/**
 * The dashboard's script, served as `dashboard.js`. Plain ES2017, no build step. It writes data
 * with `textContent` only (never `innerHTML`), reconnects with backoff and takes a fresh snapshot on
 * every (re)subscribe.
 */
export const DASHBOARD_SCRIPT = String.raw`(function () {
  'use strict';
  var wsPath = document.querySelector('meta[name="progress-ws-path"]').getAttribute('content') || '/ws';
  // A read token in the page's address (?token=) is taken out of it at once (history.replaceState), so
  // that it is not left in the history, a bookmark, a copied link or a screenshot of the address bar.
  // The tab keeps it (sessionStorage, by the page's path): its reconnects use it, and so does a reload
  // of the address without it. A new ?token= takes its place.
  var TOKEN_KEY = 'progress-token:' + location.pathname;
  var token = readToken();
  function readToken() {
    var fromUrl = new URLSearchParams(location.search).get('token');
    if (fromUrl === null) {
      try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
    }
    // The other parameters stay as they were written.
    var kept = location.search.slice(1).split('&').filter(function (part) {
      var name = part.split('=')[0];
      try { name = decodeURIComponent(name.replace(/\+/g, ' ')); } catch (e) { /* kept as written */ }
      return part !== '' && name !== 'token';
    });
    try { history.replaceState(history.state, '', location.pathname + (kept.length ? '?' + kept.join('&') : '') + location.hash); } catch (e) { /* the address stays */ }
    try {
      if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* no storage: a reload has no token */ }
    return fromUrl;
  }
  var wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + wsPath + (token ? '?token=' + encodeURIComponent(token) : '');
  // A malformed hash (#%E0) must not stop the page: it just selects nothing.
  var hashId = function () { try { return decodeURIComponent(location.hash.slice(1)); } catch (e) { return ''; } };
  var ws = null, retry = 0, closeReason = null, selected = hashId() || null, state = null, rows = [], events = [], listTimer = null;
  // A subscribe the server could not serve (its store failed): the message shown, and the one pending
  // subscribe again (its timer) with its backoff, which doubles from SUB_RETRY_MS up to SUB_RETRY_MAX_MS.
  var subError = null, subTimer = null, subRetry = 0;
  // How many events "Recent events" lists. A snapshot brings the tasks' recentEvents only: the
  // upgrade's own events (started, phase changes, completed, ...) are in none of them. When those
  // leave a hole in the last EVENTS seqs, the page asks for them once per subscribe (backfill): it
  // subscribes again, resuming a few seqs back in the same run (sinceSeq and createdAt), which
  // replays them and goes on live.
  var EVENTS = 15, backfill = false;
  // The unsubscribes of upgrades left, until the page knows the server took them. The rate limit may
  // refuse an unsubscribe as any message, and its error names none: the server then kept sending that
  // upgrade's events for as long as the connection lived, and each such one held a place of the
  // server's subscriptions per connection (at 100, every subscribe was refused). The server answers in
  // the order of the messages, an unsubscribe with nothing when it takes it: the answer to a message
  // sent after it (the list, a subscribe) says it was taken unless a refusal came first. So the page
  // numbers what it sends and keeps, in order, the numbers of the messages that get an answer
  // ('answerable'); each answer is of one of them, at the earliest the oldest. A refusal that names no
  // message makes every unsubscribe not yet known to be taken one to send again (after 1 s, doubling
  // up to 10 s); sending one twice does no harm. The upgrade selected is never unsubscribed again.
  var sentCount = 0, answerable = [], unsubSent = new Map(), unsubAgain = new Set(), unsubTimer = null, unsubRetry = 0;
  // The status shows an error of a request the store failed to serve (the list): the next list
  // answered ends it. A refusal (FORBIDDEN, RATE_LIMITED, INVALID_MESSAGE) stays shown.
  var storeError = false;
  // The status shows a subscribe refused (FORBIDDEN: the page asks for nothing else that can be), or a
  // message the rate limit refused (RATE_LIMITED naming no upgrade). It stays while that upgrade is
  // selected, and ends once one is served: it is of an upgrade left then, or of a message since served.
  var forbidden = false;
  function refusal(code) { return code === 'FORBIDDEN' || code === 'RATE_LIMITED' || code === 'INVALID_MESSAGE'; }
  var SUB_RETRY_MS = 500, SUB_RETRY_MAX_MS = 10000;
  // A connection proves useful by staying open this long: only then does the backoff start again from
  // its shortest delay. A server that answers and then closes at once (expired credentials, a policy
  // refusal: 1008) would otherwise be reconnected to every few hundred ms for ever.
  var HEALTHY_MS = 5000;
  // The page asks for the list every LIST_MS, and the server answers each: a connection on which a
  // request has gone unanswered (no message at all) for staleMs is dead without knowing it (a NAT or a
  // proxy dropped it, a laptop slept), and no close would ever come to say so. Counted from the
  // request, not from the last message: a background tab's timers run once a minute. The window
  // doubles after each connection given up (a slow link bringing one large snapshot), up to
  // STALE_MAX_MS, and starts over once a connection has been delivering for HEALTHY_MS.
  var LIST_MS = 5000, STALE_MIN_MS = 15000, STALE_MAX_MS = 120000;
  // A connection that stays CONNECTING as long (a peer that took the TCP connection and never answers
  // the handshake) is given up the same way: the browser's own limit is minutes.
  var staleMs = STALE_MIN_MS, unansweredSince = 0, openedAt = 0, connectingSince = 0;
  // These spans are timed on the monotonic clock (performance.now()), never Date.now(): a wall clock
  // set back (an NTP step, a laptop's clock put right) made an unanswered request an hour below zero
  // old, and a dead connection was shown live for that hour; one set forward dropped a healthy one.
  // (A laptop that slept is still caught: its first unanswered request is given up staleMs later.)
  var mono = function () { return performance.now(); };
  // The server's clock, kept right as the writer's that stamped the upgrade's times is: told in each
  // welcome (serverTime), and carried on from there by the monotonic clock. The browser's own clock
  // may be minutes off (a laptop): the time since the start, and the ETA drawn from it, were that much
  // off, an upgrade just begun showing '-' (below zero) or 10 minutes already spent. Without
  // serverTime (an older server), the browser's clock.
  var serverAt = NaN, serverMonoAt = 0;
  function serverNow() { return isFinite(serverAt) ? serverAt + (mono() - serverMonoAt) : Date.now(); }
  var $ = function (id) { return document.getElementById(id); };
  // Core's rule for an upgrade id. A hash that breaks it (a link mangled on its way: a space, a slash)
  // names no upgrade: the page says so and sends nothing for it. The server would refuse the subscribe
  // (INVALID_MESSAGE), whose error the status kept showing after the user picked an upgrade served.
  var ID = /^[A-Za-z0-9_.:-]{1,128}$/;
  function validId(id) { return typeof id === 'string' && ID.test(id) && id !== '.' && id !== '..'; }

  // Bidi marks, overrides and isolates in text a writer sent become spaces: the browser would show
  // it in another order than it holds ("Rollback <U+202E>ko" drawn as "Rollback ok").
  var BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = clean(text);
    return e;
  }
  function clean(text) { return String(text).replace(BIDI, ' '); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function pct(n) { return (Math.round((Number(n) || 0) * 10) / 10) + '%'; }
  // A bar is named by what it measures (an upgrade, a task, "Overall progress"): a screen reader lists
  // every bar of the page, and a nameless one said only "progress bar, 30".
  function bar(value, status, big, name) {
    var b = el('div', 'bar' + (big ? ' big' : '') + (status ? ' ' + status : ''));
    b.setAttribute('aria-label', clean(name));
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
  function send(msg) {
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(msg));
    sentCount++;
    if (msg.type === 'subscribe' || msg.type === 'list_upgrades') answerable.push(sentCount);
    return true;
  }
  // The status region (role=status: a screen reader reads what it is given, politely, without moving
  // the focus) is given only news: the connection lost (once, not at every reconnect that fails), back
  // again, an error shown, the selected upgrade ending. #conn, the bars and the facts change far more
  // often and are not read out. A text is given once: the same one again says nothing.
  var said = '', LOST = 'Connection lost; reconnecting';
  function announce(text) { text = clean(text); if (text === said) return; said = text; $('announce').textContent = text; }
  function setConn(text, live) {
    var c = $('conn'); c.textContent = text; c.className = live ? 'live' : 'down';
    // An error shown is read out; 'live' says so only after a lost connection, and otherwise lets an
    // error said before be said again when it comes back.
    if (live) announce(text !== 'live' ? text : said.indexOf(LOST) === 0 ? 'Connected' : '');
  }
  function lost() { announce(LOST + (closeReason ? ' (' + closeReason + ')' : '')); }
  // The selected upgrade completed, failed, was cancelled or paused since the state 'was' (its status before).
  var ENDS = { completed: 1, failed: 1, cancelled: 1, paused: 1 };
  // Any other change of status lets the same end be said again (paused, resumed, paused again).
  function announceEnd(was) {
    if (!state || state.status === was) return;
    if (ENDS[state.status]) announce(state.upgradeId + ' ' + state.status + (state.status === 'failed' && state.errorMessage ? ': ' + state.errorMessage : ''));
    else said = '';
  }
  // A time of another day than today comes with its date: a time of day alone reads as today's, and a
  // page left open on a long upgrade showed an ETA days away, or a start of the day before, as hours off.
  function fmtTime(iso) {
    if (!iso && iso !== 0) return '-';
    var d = new Date(iso);
    if (isNaN(d)) return '-';
    return d.toDateString() === new Date(serverNow()).toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || ms < 0) return '-';
    var s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
  }

  // ---- a small reducer: enough to follow live events between snapshots. It follows core's
  // (packages/core/src/reducer.ts) so that the numbers shown live are the ones a snapshot would show:
  // the same weighted mean, and only the ancestors of the task an event changed are recomputed.
  // Children of each task and the top-level tasks, made once per tasks record (a snapshot brings a
  // new one) and kept up to date by task.added: finding them by a scan of every task, for every task,
  // on every event, made a page of 1000 tasks fall tens of seconds behind.
  var indexes = new WeakMap();
  function indexOf(tasks) {
    var index = indexes.get(tasks);
    if (!index) {
      index = { children: new Map(), top: [] };
      Object.keys(tasks).forEach(function (k) { addToIndex(index, tasks[k]); });
      indexes.set(tasks, index);
    }
    return index;
  }
  function addToIndex(index, t) {
    if (t.parentTaskId === null || t.parentTaskId === undefined) { index.top.push(t); return; }
    var siblings = index.children.get(t.parentTaskId);
    if (siblings) siblings.push(t); else index.children.set(t.parentTaskId, [t]);
  }
  function round2(n) { return Math.round(n * 100) / 100; }
  function num(v) { return typeof v === 'number' && isFinite(v) ? v : null; }
  // Skipped and cancelled tasks are left out of every mean.
  function counts(t) { return t.status !== 'skipped' && t.status !== 'cancelled'; }
  // The smallest positive double with full precision (below it, products lose digits).
  var MIN_NORMAL = 2.2250738585072014e-308;
  // Weighted mean of the tasks' percentages, or undefined when none counts: then a parent keeps its
  // own percentage (as core does), it does not drop to 0.
  function weightedMean(list) {
    var sum = 0, weights = 0;
    for (var i = 0; i < list.length; i++) { var t = list[i]; if (!counts(t)) continue; sum += t.percentage * t.weight; weights += t.weight; }
    if (weights === 0) return undefined;
    // Weights are any finite number > 0: huge ones overflow the sums (Infinity, then NaN), tiny ones
    // lose precision. Then the mean is taken again with the weights scaled by the largest.
    if (sum < Infinity && weights < Infinity && weights >= MIN_NORMAL) return round2(sum / weights);
    return scaledMean(list);
  }
  function scaledMean(list) {
    var max = 0, sum = 0, weights = 0, i, t;
    for (i = 0; i < list.length; i++) { t = list[i]; if (counts(t) && t.weight > max) max = t.weight; }
    if (!(max > 0 && max < Infinity)) return undefined;
    for (i = 0; i < list.length; i++) { t = list[i]; if (!counts(t)) continue; var w = t.weight / max; sum += t.percentage * w; weights += w; }
    return weights > 0 ? round2(sum / weights) : undefined;
  }
  // Recomputes the percentages that depend on taskId: its ancestors', then the upgrade's.
  function recompute(s, taskId) {
    var index = indexOf(s.tasks), seen = null, id = taskId;
    while (id !== null && id !== undefined) {
      // Guards against a parent cycle in the data.
      if (seen && seen.has(id)) break;
      var t = s.tasks[id];
      if (!t) break;
      var kids = index.children.get(id);
      if (t.status === 'completed') t.percentage = 100;
      else if (kids) { var mean = weightedMean(kids); if (mean !== undefined) t.percentage = mean; }
      (seen = seen || new Set()).add(id);
      id = t.parentTaskId;
    }
    var top = weightedMean(index.top);
    s.overallPercentage = s.status === 'completed' ? 100 : (top === undefined ? 0 : top);
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
      recompute(s, null);
    } else if (e.taskId) {
      var t = s.tasks[e.taskId];
      if (e.type === 'task.added') {
        // A task is added once (core refuses it twice): a second one would leave the first in the index.
        if (t) return;
        var parent = typeof d.parentTaskId === 'string' ? d.parentTaskId : null;
        // The index first: made after the task is in the record (the first event after a snapshot), it
        // would hold the task already, and adding it again would count it twice.
        var index = indexOf(s.tasks);
        t = s.tasks[e.taskId] = { taskId: e.taskId, taskName: d.taskName || e.taskId, taskType: e.taskType, parentTaskId: parent,
          status: e.status, percentage: 0, weight: num(d.weight) === null ? 1 : num(d.weight), totalSteps: num(d.totalSteps), completedSteps: 0, currentStep: null, errorMessage: null, recentEvents: [] };
        addToIndex(index, t);
        recompute(s, parent);
        return;
      }
      if (!t) return;
      t.status = e.status;
      if (typeof e.percentage === 'number') t.percentage = e.percentage;
      if (e.type === 'task.completed') t.percentage = 100;
      if (typeof d.currentStep === 'string') t.currentStep = d.currentStep;
      if (typeof d.completedSteps === 'number') t.completedSteps = d.completedSteps;
      if (e.type === 'task.failed') t.errorMessage = d.errorMessage || e.message;
      if (e.type === 'task.retried') t.errorMessage = null;
      recompute(s, t.taskId);
    }
  }

  // ---- rendering (textContent only)
  // Makes the children of ul the rows of next (a Map, in its order; nodes the set of their li):
  // others are removed, and a row already in its place is not touched (moving an element drops its
  // focus and a selection in it).
  function place(ul, next, nodes) {
    for (var c = ul.firstChild, after; c; c = after) { after = c.nextSibling; if (!nodes.has(c)) ul.removeChild(c); }
    var at = ul.firstChild;
    next.forEach(function (row) {
      if (at === row.li) at = at.nextSibling;
      else ul.insertBefore(row.li, at);
    });
  }
  // Each row takes the keyboard's focus (Tab) and is picked with Enter or Space, as with a click; the
  // arrow keys, Home and End move the focus between rows (Tab through a thousand upgrades is no way
  // to reach the last), without picking one or scrolling the page further than the row. The
  // one selected is aria-current. The list comes anew with every answer (every 5 s): each upgrade's row
  // stays, by id, and only its text, badge and bar are updated. Drawn anew, a row pressed just before a
  // refresh was another element than the one released on, and the click was lost (with a thousand
  // upgrades a refresh takes a while); and the row that had the focus had to be given it back.
  var listRows = new Map();
  function listRow(id) {
    var li = el('li');
    li.setAttribute('data-upgrade-id', id);
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    li.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        select(id);
        return;
      }
      // With a modifier, the key is the browser's (Alt+Home, Ctrl+End).
      if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
      var to = e.key === 'ArrowDown' ? li.nextElementSibling : e.key === 'ArrowUp' ? li.previousElementSibling
        : e.key === 'Home' ? li.parentNode.firstElementChild : e.key === 'End' ? li.parentNode.lastElementChild : undefined;
      if (to === undefined) return;
      e.preventDefault();
      if (to) to.focus();
    });
    li.addEventListener('click', function () { select(id); });
    var top = el('div', 'row'), status = el('span'), info = el('span', 'muted'), b = bar(0, '', false, id);
    top.appendChild(el('span', 'id', id));
    top.appendChild(status);
    li.appendChild(top);
    li.appendChild(info);
    li.appendChild(b);
    return { li: li, status: status, info: info, bar: b, key: null };
  }
  function renderList() {
    var ul = $('upgrades');
    var active = document.activeElement, focused = null;
    if (!rows.length) { clear(ul); listRows = new Map(); ul.appendChild(el('li', 'empty', 'No upgrades yet')); return; }
    var next = new Map(), nodes = new Set();
    rows.forEach(function (r) {
      var id = String(r.upgradeId);
      if (next.has(id)) return;
      var row = listRows.get(id) || listRow(id);
      var on = id === selected;
      row.li.className = on ? 'selected' : '';
      if (on) row.li.setAttribute('aria-current', 'true'); else row.li.removeAttribute('aria-current');
      var key = JSON.stringify([String(r.status), String(r.clusterName), r.currentPhase ? String(r.currentPhase) : '', Number(r.overallPercentage) || 0]);
      if (row.key !== key) {
        row.key = key;
        var fresh = badge(r.status), b = bar(r.overallPercentage, r.status, false, id);
        row.status.className = fresh.className; row.status.textContent = fresh.textContent;
        row.info.textContent = clean(r.clusterName + (r.currentPhase ? ' \u00b7 ' + r.currentPhase : ''));
        row.bar.className = b.className; row.bar.setAttribute('aria-valuenow', b.getAttribute('aria-valuenow'));
        row.bar.firstChild.style.width = b.firstChild.style.width;
      }
      if (row.li === active) focused = row.li;
      next.set(id, row);
      nodes.add(row.li);
    });
    place(ul, next, nodes);
    listRows = next;
    // A row moved (another upgrade updated since) loses the focus: given back without scrolling, or a
    // user who had clicked an upgrade and scrolled down its tasks was thrown back up to that row.
    if (focused && document.activeElement !== focused) focused.focus({ preventScroll: true });
  }
  function fact(parent, label, value) {
    var d = el('div');
    d.appendChild(el('span', 'muted', label));
    d.appendChild(el('span', 'v', value));
    parent.appendChild(d);
  }
  // Never throws: a time that is not one (NaN, or past the range of a Date) is shown as '-' (it used to
  // go through toISOString(), whose RangeError stopped the whole detail view from rendering).
  function eta(s) {
    var p = s.overallPercentage;
    if (s.status !== 'in_progress' || !s.startedAt || !(p > 0 && p < 100)) return '-';
    var now = serverNow();
    var spent = Math.max(0, now - Date.parse(s.startedAt));
    var at = now + spent * (100 - p) / p;
    return isFinite(at) ? fmtTime(at) : '-';
  }
  // The task rows stay between renders, by task id, each with the text of what it shows: a render
  // builds only the rows whose task changed and moves only rows out of place. Building every row on
  // every frame took a page of 2,000 tasks about 450 ms a frame, so it fell behind and stopped
  // answering clicks while events came in.
  var taskRows = new Map();
  function noTasks(tasksEl) { clear(tasksEl); taskRows = new Map(); tasksEl.appendChild(el('p', 'empty', 'No tasks')); }
  // A level of the task tree is indented 18 px, less on a narrow screen (2% of its width): at 320 CSS px
  // (a phone, a page zoomed to 400%) 18 px a level left a task 8 levels down a name a letter wide.
  function indent(depth) { return 'calc(' + depth + ' * min(18px, 2vw))'; }
  function taskRow(t, depth) {
    var row = el('div', 'task');
    row.setAttribute('data-task-id', t.taskId);
    var name = el('span', 'name', t.taskName);
    name.style.paddingLeft = indent(depth);
    row.appendChild(name);
    row.appendChild(badge(t.status));
    row.appendChild(bar(t.percentage, t.status, false, t.taskName));
    row.appendChild(el('span', 'pct', pct(t.percentage)));
    if (t.currentStep) { var st = el('span', 'muted', t.currentStep); st.style.gridColumn = '1 / -1'; st.style.paddingLeft = indent(depth); row.appendChild(st); }
    if (t.errorMessage) row.appendChild(el('span', 'err', t.errorMessage));
    return row;
  }
  // Shows the rows of 'order' (tasks with their depth), in that order, and nothing else.
  function renderTasks(tasksEl, order) {
    var next = new Map(), nodes = new Set(), i;
    for (i = 0; i < order.length; i++) {
      var t = order[i].t, depth = order[i].depth;
      // Exactly what the row shows, as JSON: no two different rows can share a key (a joined string
      // let text move from one field to the next, and null and undefined look alike).
      var key = JSON.stringify([t.taskName == null ? '' : String(t.taskName), String(t.status), Number(t.percentage) || 0, t.currentStep ? String(t.currentStep) : '', t.errorMessage ? String(t.errorMessage) : '', depth]);
      var had = taskRows.get(t.taskId);
      var row = had && had.key === key ? had : { key: key, node: taskRow(t, depth) };
      next.set(t.taskId, row);
      nodes.add(row.node);
    }
    for (var c = tasksEl.firstChild, after; c; c = after) { after = c.nextSibling; if (!nodes.has(c)) tasksEl.removeChild(c); }
    var at = tasksEl.firstChild;
    next.forEach(function (row) {
      if (at === row.node) at = at.nextSibling;
      else tasksEl.insertBefore(row.node, at);
    });
    taskRows = next;
  }
  // The overview and "Recent events" are drawn into a detached copy, which then patches the page's:
  // only the text and attributes that differ are written, so that text the user selected there (an
  // id, a cluster, a message to copy) stays selected. Drawn anew every second (the ETA and elapsed time
  // of an upgrade in progress) and with every event, it could not be selected for longer than that.
  function patch(into, from) {
    var a = into.childNodes, b = from.childNodes, i, same = a.length === b.length;
    for (i = 0; same && i < b.length; i++) same = a[i].nodeName === b[i].nodeName;
    if (!same) { clear(into); while (from.firstChild) into.appendChild(from.firstChild); return; }
    for (i = 0; i < b.length; i++) {
      var x = a[i], y = b[i];
      if (y.nodeType !== 1) { if (x.nodeValue !== y.nodeValue) x.nodeValue = y.nodeValue; continue; }
      var j, attr;
      for (j = x.attributes.length - 1; j >= 0; j--) { attr = x.attributes[j].name; if (!y.hasAttribute(attr)) x.removeAttribute(attr); }
      for (j = 0; j < y.attributes.length; j++) {
        attr = y.attributes[j];
        // A style attribute written as one is refused by the CSP (style-src 'self'); through CSSOM it is not.
        if (attr.name === 'style') { if (x.style.cssText !== y.style.cssText) x.style.cssText = y.style.cssText; }
        else if (x.getAttribute(attr.name) !== attr.value) x.setAttribute(attr.name, attr.value);
      }
      patch(x, y);
    }
  }
  function renderDetail() {
    var ov = document.createElement('section');
    drawDetail(ov);
    patch($('overview'), ov);
  }
  function drawDetail(ov) {
    var tasksEl = $('tasks');
    // Not "Waiting for": the store could not say whether the upgrade exists.
    if (subError) ov.appendChild(el('p', 'err sub-error', subError));
    if (!state) {
      var why = !selected ? 'Select an upgrade' : validId(selected) ? 'Waiting for ' + selected + '\u2026' : 'No upgrade can be named "' + selected + '"';
      if (!subError) ov.appendChild(el('p', 'empty', why));
      noTasks(tasksEl); renderEvents(); return;
    }
    var head = el('div', 'row');
    head.appendChild(el('h2', 'title', state.upgradeId));
    head.appendChild(badge(state.status));
    ov.appendChild(head);
    var b = bar(state.overallPercentage, state.status, true, 'Overall progress');
    b.id = 'overall';
    ov.appendChild(b);
    var facts = el('div', 'facts');
    fact(facts, 'Overall', pct(state.overallPercentage));
    fact(facts, 'Phase', state.currentPhase || '-');
    fact(facts, 'Cluster', state.clusterName);
    fact(facts, 'Plan', state.planId);
    fact(facts, 'Started', fmtTime(state.startedAt));
    fact(facts, 'ETA', eta(state));
    fact(facts, 'Elapsed', state.startedAt ? fmtDuration((state.completedAt ? Date.parse(state.completedAt) : serverNow()) - Date.parse(state.startedAt)) : '-');
    fact(facts, 'Seq', state.lastSeq);
    ov.appendChild(facts);
    if (state.errorMessage) ov.appendChild(el('p', 'err', state.errorMessage));
    var ids = Object.keys(state.tasks);
    if (!ids.length) { noTasks(tasksEl); renderEvents(); return; }
    // Each task's children, in one pass (a scan of every task per row made a render O(n^2)). A task
    // whose parent is not in the state is shown at the top level.
    var kids = new Map(), roots = [];
    ids.forEach(function (k) {
      var t = state.tasks[k], p = t.parentTaskId;
      if (p === null || p === undefined || !state.tasks[p]) { roots.push(t); return; }
      var list = kids.get(p);
      if (list) list.push(t); else kids.set(p, [t]);
    });
    var order = [];
    function addTask(t, depth) {
      order.push({ t: t, depth: depth });
      if (depth < 8) (kids.get(t.taskId) || []).forEach(function (c) { addTask(c, depth + 1); });
    }
    roots.forEach(function (t) { addTask(t, 0); });
    renderTasks(tasksEl, order);
    renderEvents();
  }
  // Each event's row stays, by its seq and eventId (another run may reuse the seq), and is moved as
  // new events come on top: patched by position, every row took the text of the one before it at
  // each event, and a message selected to copy was lost. Only its time is written again (a time of
  // yesterday gets its date at midnight).
  var eventRows = new Map();
  function renderEvents() {
    var ul = $('events'), next = new Map(), nodes = new Set();
    events.slice().reverse().forEach(function (e) {
      var key = e.seq + ' ' + e.eventId;
      if (next.has(key)) return;
      var row = eventRows.get(key), time = fmtTime(e.timestamp);
      if (!row) {
        var li = el('li'), when = el('span', 'muted', time);
        li.appendChild(el('span', 'seq', '#' + e.seq));
        li.appendChild(when);
        li.appendChild(el('span', '', e.type));
        li.appendChild(el('span', '', e.message));
        row = { li: li, when: when };
      } else if (row.when.textContent !== clean(time)) row.when.textContent = time;
      next.set(key, row);
      nodes.add(row.li);
    });
    place(ul, next, nodes);
    eventRows = next;
  }
  var pending = false;
  function schedule() { if (pending) return; pending = true; requestAnimationFrame(function () { pending = false; renderDetail(); }); }

  // ---- protocol
  function select(id) {
    if (selected && selected !== id && validId(selected)) unsubscribe(selected);
    // Its subscribe below comes after any unsubscribe of it: that one is not to be sent again.
    unsubSent.delete(id); unsubAgain.delete(id);
    if (selected !== id) { state = null; events = []; stopSubRetry(); }
    selected = id;
    history.replaceState(null, '', '#' + encodeURIComponent(id));
    subscribe();
    renderList();
    renderDetail();
  }
  // Always without sinceSeq, also on a reconnect: the server then sends a snapshot of what it has now,
  // which replaces the state. A seq does not name a run: while the page was away the id may have been
  // started again (a new run, seqs from 1 again), and once that run is past the page's seq the server
  // cannot tell, and would replay the new run's events on top of the old run's state. Spotting the new
  // run in the page (an upgrade.created, an unknown task, another createdAt in the list) misses the
  // common case of a plan run again with the same task ids and events past the created one. A
  // snapshot is one state's worth of JSON, once per reconnect.
  function subscribe() {
    // One subscribe at a time: a retry pending is this one.
    if (subTimer) { clearTimeout(subTimer); subTimer = null; }
    if (!selected || !validId(selected)) return;
    backfill = true;
    send({ type: 'subscribe', upgradeId: selected });
  }
  // Puts an event in "Recent events" by its seq (a replayed one may come after later ones), once.
  function listEvent(e) {
    var i = events.length;
    while (i > 0 && events[i - 1].seq > e.seq) i--;
    if (i > 0 && events[i - 1].seq === e.seq) return false;
    if (i === 0 && events.length >= EVENTS) return false;
    events.splice(i, 0, e);
    if (events.length > EVENTS) events.shift();
    return true;
  }
  // After the snapshot of a subscribe: the events of the last EVENTS seqs that it did not bring.
  function askForRecentEvents() {
    if (!backfill) return;
    // Once per subscribe: the snapshot of a resync that answers this (the events are gone, another
    // run) is not asked for again.
    backfill = false;
    var want = Math.min(EVENTS, state.lastSeq), have = 0;
    events.forEach(function (e) { if (e.seq > state.lastSeq - want) have++; });
    if (have >= want || typeof state.createdAt !== 'string') return;
    send({ type: 'subscribe', upgradeId: selected, sinceSeq: state.lastSeq - want, createdAt: state.createdAt });
  }
  // The subscribe to the selected upgrade was refused for a reason that may pass (its store failed, a
  // limit): show why, and subscribe again later on the same socket. A leave (select) or a close stops it.
  function retrySubscribe(m) {
    subError = 'Cannot show ' + selected + ': ' + m.message + ' (' + m.code + '); retrying\u2026';
    announce(subError);
    schedule();
    // A limit of the server (RATE_LIMITED) passes when others let go: asked again more slowly.
    subscribeLater(m.code === 'RATE_LIMITED' ? backoff(5000, 60000, subRetry++) : backoff(SUB_RETRY_MS, SUB_RETRY_MAX_MS, subRetry++));
  }
  // The selected upgrade's subscribe, sent again after delay ms (the one pending is replaced), unless
  // another upgrade is selected by then.
  function subscribeLater(delay) {
    if (subTimer) clearTimeout(subTimer);
    var id = selected;
    subTimer = setTimeout(function () { subTimer = null; if (selected === id) subscribe(); }, delay);
  }
  // A retry's wait: base ms doubled per attempt, at most max, plus up to 250 ms of jitter.
  function backoff(base, max, attempt) { return Math.min(max, base * Math.pow(2, attempt)) + Math.floor(Math.random() * 250); }
  function unsubscribe(id) {
    unsubAgain.delete(id);
    if (send({ type: 'unsubscribe', upgradeId: id })) unsubSent.set(id, sentCount);
  }
  // An answer came (the list, or one of a subscribe): the unsubscribes sent before the oldest message
  // awaiting one were taken (a refusal of one would have come before it).
  function answered() {
    var n = answerable.shift();
    if (n === undefined) return;
    unsubSent.forEach(function (at, id) { if (at < n) unsubSent.delete(id); });
    if (!unsubSent.size && !unsubAgain.size) unsubRetry = 0;
  }
  // The rate limit refused a message: any unsubscribe not known to be taken is sent again later.
  function unsubscribeLater() {
    unsubSent.forEach(function (at, id) { unsubAgain.add(id); });
    unsubSent.clear();
    if (!unsubAgain.size || unsubTimer) return;
    unsubTimer = setTimeout(function () {
      unsubTimer = null;
      var ids = [];
      unsubAgain.forEach(function (id) { ids.push(id); });
      ids.forEach(function (id) { if (id !== selected) unsubscribe(id); else unsubAgain.delete(id); });
    }, backoff(1000, SUB_RETRY_MAX_MS, unsubRetry++));
  }
  // A new connection holds no subscription: nothing of the last one's is to be sent again.
  function forgetUnsubscribes() {
    if (unsubTimer) clearTimeout(unsubTimer);
    unsubTimer = null; unsubRetry = 0; answerable = []; unsubSent = new Map(); unsubAgain = new Set();
  }
  function stopSubRetry() {
    if (subTimer) clearTimeout(subTimer);
    subTimer = null; subRetry = 0;
    if (subError) { subError = null; schedule(); }
  }
  // The selected upgrade does not exist (or no longer): show that, rather than the state of before.
  function drop() { state = null; events = []; schedule(); }
  function onMessage(ev) {
    var m;
    unansweredSince = 0;
    if (openedAt && mono() - openedAt >= HEALTHY_MS) staleMs = STALE_MIN_MS;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    switch (m.type) {
      case 'welcome': var told = typeof m.serverTime === 'string' ? Date.parse(m.serverTime) : NaN; if (isFinite(told)) { serverAt = told; serverMonoAt = mono(); } storeError = false; forbidden = false; setConn('live', true); send({ type: 'list_upgrades' }); subscribe(); break;
      // A snapshot follows when it exists; when not, its events arrive from seq 1 once it appears.
      case 'subscribed':
        answered();
        if (m.upgradeId !== selected) break;
        stopSubRetry();
        if (forbidden) { forbidden = false; setConn('live', true); }
        if (m.exists === false) drop();
        break;
      case 'upgrades':
        answered();
        // A list answered: the store error shown for an earlier one is over (not a refusal: that stays).
        if (storeError) { storeError = false; setConn('live', true); }
        rows = Array.isArray(m.data) ? m.data : [];
        if (!selected && rows.length) select(rows[0].upgradeId); else renderList();
        break;
      case 'snapshot':
        if (m.upgradeId !== selected) break;
        // The snapshot after a reconnect: the upgrade may have ended meanwhile.
        var was = state && state.upgradeId === m.upgradeId ? state.status : null;
        state = m.data;
        if (was) announceEnd(was);
        // Task ids are free text ('__proto__' and 'constructor' are ids like any other): keep them in
        // an object without a prototype, so that every lookup and assignment is of a real task.
        var own = Object.create(null);
        Object.keys(state.tasks || {}).forEach(function (k) { own[k] = state.tasks[k]; });
        state.tasks = own;
        var all = [];
        // Pushed, not concatenated: a concat per task copied the whole list each time, quadratic (1.6 s
        // of a frozen page for 5,000 tasks of 20 events, at every reconnect and selection).
        Object.keys(state.tasks).forEach(function (k) { Array.prototype.push.apply(all, state.tasks[k].recentEvents || []); });
        all.sort(function (a, b) { return a.seq - b.seq; });
        events = all.slice(-EVENTS);
        askForRecentEvents();
        schedule();
        break;
      case 'progress_event':
        if (m.upgradeId !== selected) break;
        // Without a state, only a run's first event starts one: the server sends a snapshot before any
        // other event, or (the upgrade did not exist) the run's events from upgrade.created on. Any
        // other event comes from a subscription the page has left: an upgrade left and selected again
        // gets the events the server sent before it heard the unsubscribe. Folded into an empty state,
        // that made up an upgrade of no plan, 0% and no tasks, shown until the snapshot came (as long
        // as a slow store took). The snapshot holds it.
        if (!state && m.data.type !== 'upgrade.created') break;
        // One the state holds already (replayed for "Recent events", see askForRecentEvents; the
        // upgrade.created of this very run too) is only listed.
        if (state && m.data.seq <= state.lastSeq && (m.data.type !== 'upgrade.created' || m.data.timestamp === state.createdAt)) {
          if (listEvent(m.data)) schedule();
          break;
        }
        // upgrade.created starts a run: nothing of a state kept from an earlier run under this id may
        // stay (the server sends resync and a snapshot first; this is a second guard).
        if (m.data.type === 'upgrade.created') {
          state = { upgradeId: m.upgradeId, planId: '', clusterName: '', status: 'not_started', tasks: Object.create(null), overallPercentage: 0, currentPhase: null, lastSeq: 0 };
          events = [];
        }
        if (m.data.seq <= state.lastSeq) break;
        if (m.data.type === 'upgrade.created') { state.planId = m.data.details.planId; state.clusterName = m.data.details.clusterName; state.createdAt = m.data.timestamp; }
        var before = state.status;
        apply(state, m.data);
        announceEnd(before);
        listEvent(m.data);
        schedule();
        break;
      // The snapshot that follows replaces the state; without one (the upgrade is gone) the page must
      // not go on showing the old one.
      case 'resync': if (m.upgradeId === selected) drop(); break;
      case 'error':
        // What answers a subscribe (its refusal, FORBIDDEN, or its store's failure, which names it) or the
        // list (its store's failure); the rate limit's refusal may be of an unsubscribe, which has no answer.
        if (m.upgradeId !== undefined || (m.code !== 'RATE_LIMITED' && m.code !== 'INVALID_MESSAGE')) answered();
        if (m.code === 'RATE_LIMITED' && m.upgradeId === undefined) unsubscribeLater();
        // One naming another upgrade answers a subscribe of an upgrade since left.
        if (m.upgradeId !== undefined && m.upgradeId !== selected) break;
        // One naming the selected upgrade answers its subscribe (the server's store failed): that is
        // not "does not exist", and it may pass. FORBIDDEN will not.
        if (m.upgradeId !== undefined && m.code !== 'FORBIDDEN') retrySubscribe(m);
        else {
          storeError = !refusal(m.code);
          forbidden = m.code === 'FORBIDDEN' || m.code === 'RATE_LIMITED';
          setConn('error: ' + m.message, true);
          // The rate limit names no message: the one refused may be the subscribe of the upgrade
          // selected (a user going back and forth quickly), which would then wait for ever. Asked again
          // once the bucket had time to refill (a subscribe served twice just sends a fresh snapshot).
          // One subscribe later, slower each time it is refused again.
          if (m.code === 'RATE_LIMITED' && m.upgradeId === undefined && selected) subscribeLater(backoff(1000, SUB_RETRY_MAX_MS, subRetry++));
        }
        break;
    }
  }
  function connect() {
    setConn((retry ? 'reconnecting' : 'connecting') + (closeReason ? ' (' + closeReason + ')' : ''), false);
    forgetUnsubscribes();
    try { ws = new WebSocket(wsUrl, ['progress.v1']); } catch (e) { return later(); }
    openedAt = 0;
    unansweredSince = 0;
    connectingSince = mono();
    ws.onopen = function () { openedAt = mono() || 1; };
    ws.onmessage = onMessage;
    ws.onclose = function (e) {
      // Not on welcome: a server that closes right after it would have the backoff start over each time.
      if (openedAt && mono() - openedAt >= HEALTHY_MS) retry = 0;
      // 1008 is the server refusing this client (credentials expired, rate limit): say why, since
      // reconnecting alone may not cure it (a bare "disconnected" gave the user nothing to act on).
      // A socket that never opened tells nothing new (its handshake was refused, which a page cannot
      // read, or the server is down): the reason stays. Credentials that expired are closed with 1008
      // and then refused at every handshake (401), which wiped the reason for good.
      if (e && e.code === 1008) closeReason = (e.reason || 'policy violation') + ', code 1008';
      else if (openedAt) closeReason = null;
      // A reason the server gave (a 1008: credentials expired) says more than the refusals after it.
      else if (closeReason === null || closeReason === askedReason) askWhyRefused();
      setConn('disconnected' + (closeReason ? ' (' + closeReason + ')' : ''), false);
      lost();
      // The welcome of the next connection subscribes afresh.
      stopSubRetry();
      later();
    };
  }
  // A socket that never opened: its handshake may have been refused (a page cannot read the status of
  // that answer) or the server is down. The endpoint answers a plain request as it would the
  // handshake (401 without a read token it takes, 403 for an origin it refuses, 426 when it would
  // accept), so the page can say what to do; a request that fails says nothing more.
  var askedReason = null;
  var REFUSALS = {
    401: token ? 'the server refused the read token of this page: expired, or for another server?' : 'the server needs a read token: open the dashboard at the URL that carries one (?token=...)',
    403: 'the server refuses pages from this origin (allowedOrigins)',
    503: 'the server could not check the credentials of this page in time',
  };
  function askWhyRefused() {
    if (typeof fetch !== 'function') return;
    fetch(wsPath + (token ? '?token=' + encodeURIComponent(token) : ''), { cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
      // Said while this page is still disconnected: a later connection that opened says the rest.
      if (!REFUSALS[r.status] || (ws && ws.readyState === 1)) return;
      closeReason = askedReason = REFUSALS[r.status];
      setConn('disconnected (' + closeReason + ')', false);
    }, function () { /* the server is down: "disconnected" says it */ });
  }
  // A connection that stopped answering: let it go without waiting for a close, and connect again.
  function abandon() {
    var dead = ws;
    dead.onclose = null; dead.onmessage = null;
    try { dead.close(); } catch (e) { /* closing already */ }
    closeReason = 'no answer for ' + Math.round(staleMs / 1000) + ' s';
    staleMs = Math.min(STALE_MAX_MS, staleMs * 2);
    setConn('disconnected (' + closeReason + ')', false);
    lost();
    stopSubRetry();
    later();
  }
  function later() {
    ws = null;
    forgetUnsubscribes();
    setTimeout(connect, backoff(250, 5000, retry++));
  }
  listTimer = setInterval(function () {
    if (ws && ws.readyState === 0 && mono() - connectingSince > staleMs) return abandon();
    if (ws && ws.readyState === 1) {
      if (unansweredSince && mono() - unansweredSince > staleMs) return abandon();
      if (!unansweredSince) unansweredSince = mono() || 1;
    }
    send({ type: 'list_upgrades' });
  }, LIST_MS);
  setInterval(function () { if (state && state.status === 'in_progress') schedule(); }, 1000);
  window.addEventListener('hashchange', function () { var id = hashId(); if (id && id !== selected) select(id); });
  if (selected) renderDetail();
  connect();
  void listTimer;
})();
`;
