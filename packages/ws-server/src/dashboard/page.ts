import { ProgressError, describeValue } from '@progress/core';

/** Escapes text for an HTML attribute or text node. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Refuses a `wsPath` that names no endpoint the page could reach (the server's own rule for its
 * `path`): the script appends it to `ws://host` and may add `?token=`.
 *
 * @param what Names the caller in the message.
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function checkWsPath(wsPath: unknown, what: string): asserts wsPath is string {
  if (typeof wsPath !== 'string' || !wsPath.startsWith('/') || /[?#\s]/.test(wsPath)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/ws-server] ${what} wsPath must start with "/" and hold no query, fragment or space, got ${describeValue(wsPath)}`);
  }
}

/**
 * The dashboard's HTML. Only static markup: every piece of data is written by the script with
 * `textContent`. `wsPath` (the endpoint's path) is passed in a meta tag, escaped.
 *
 * @throws ProgressError `INVALID_ARGUMENT` for a `wsPath` that does not start with `/` or holds a query, fragment or space
 */
export function dashboardHtml(wsPath: string): string {
  checkWsPath(wsPath, 'dashboardHtml()');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="progress-ws-path" content="${escapeHtml(wsPath)}">
<title>Progress</title>
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js" defer></script>
</head>
<body>
<header><h1>Progress</h1><span id="conn" class="down">connecting</span></header>
<main>
<nav><h2>Upgrades</h2><ul id="upgrades"><li class="empty">No upgrades yet</li></ul></nav>
<div id="detail">
<section id="overview"><p class="empty">Select an upgrade</p></section>
<section><h2>Tasks</h2><div id="tasks"><p class="empty">No tasks</p></div></section>
<section><h2>Recent events</h2><ul id="events"></ul></section>
</div>
</main>
</body>
</html>
`;
}
