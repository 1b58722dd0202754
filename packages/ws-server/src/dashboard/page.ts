import { checkEndpointPath } from '../options.js';

/** Escapes text for an HTML attribute or text node. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The dashboard's HTML. Only static markup: every piece of data is written by the script with
 * `textContent`. `wsPath` (the endpoint's path) is passed in a meta tag, escaped.
 *
 * @throws ProgressError `INVALID_ARGUMENT` for a `wsPath` that does not start with `/` or holds a query, fragment or space
 */
export function dashboardHtml(wsPath: string): string {
  checkEndpointPath(wsPath, 'dashboardHtml() wsPath');
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
<header><h1>Progress</h1><span id="conn" class="down">connecting</span><p id="announce" class="sr-only" role="status"></p></header>
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
