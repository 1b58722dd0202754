/** The dashboard's stylesheet, served as `dashboard.css`. */
export const DASHBOARD_STYLE = `
/* Text is 4.5:1 or more on every background it is shown on (WCAG 1.4.3): --muted on --bg too (a selected
   or hovered row), --bad as the text of an error message on --panel in either scheme. */
:root { color-scheme: light dark; --bg: #f6f7f9; --panel: #fff; --fg: #1d2330; --muted: #5f6b7d; --line: #e2e6ec;
  --accent: #2f6fdf; --ok: #1f9d55; --bad: #c53030; --warn: #c98a00; }
@media (prefers-color-scheme: dark) { :root { --bg: #12151b; --panel: #1b2029; --fg: #e6e9ef; --muted: #9aa3b2; --line: #2a303b; --bad: #f07070; --accent: #4a86ee; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
/* Text a writer sent may hold no space (a cluster name of 256 characters, an ARN): it wraps wherever it
   is shown (inherited), and counts as narrow for the grid's columns, rather than run out of them. */
body { overflow-wrap: anywhere; }
header { display: flex; align-items: center; gap: 12px; padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { font-size: 16px; margin: 0; font-weight: 600; }
#conn { margin-left: auto; font-size: 12px; color: var(--muted); }
#conn.live::before { content: "\\25CF "; color: var(--ok); }
#conn.down::before { content: "\\25CF "; color: var(--bad); }
main { display: grid; grid-template-columns: 280px 1fr; gap: 16px; padding: 16px 20px; }
section, nav { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
nav h2, section h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 10px; }
section h2.title { font-size: 18px; text-transform: none; letter-spacing: 0; color: var(--fg); word-break: break-all; }
#upgrades { list-style: none; margin: 0; padding: 0; }
#upgrades li { padding: 8px 10px; border-radius: 6px; cursor: pointer; display: grid; gap: 4px; }
#upgrades li:hover { background: var(--bg); }
#upgrades li.selected { background: var(--bg); outline: 1px solid var(--accent); }
/* The keyboard's focus: its own ring, thicker and set off from the row. The selection's outline above
   replaced the browser's ring, so the row picked (which keeps the focus) looked the same focused or not. */
#upgrades li:focus-visible { outline: 2px solid var(--fg); outline-offset: 2px; }
.row { display: flex; justify-content: space-between; gap: 8px; align-items: baseline; }
.id { font-weight: 600; word-break: break-all; }
.muted { color: var(--muted); font-size: 12px; }
.badge { font-size: 11px; padding: 1px 8px; border-radius: 10px; background: var(--line); white-space: nowrap; }
.badge.in_progress { background: #dbe7ff; color: #1d4fb5; } .badge.completed { background: #d5f2e1; color: #14683a; }
.badge.failed { background: #fbdada; color: #9b2525; } .badge.paused { background: #fff0c7; color: #7a5600; }
.badge.cancelled, .badge.skipped { background: #e7e7e7; color: #555; }
/* A bar's extent (its edge) and its fill against its track are 3:1 or more (WCAG 1.4.11): the list's
   bars have no percentage beside them. The track alone was 1.25:1 against the panel. */
.bar { height: 8px; background: var(--line); border: 1px solid var(--muted); border-radius: 4px; overflow: hidden; }
.bar > div { height: 100%; width: 0; background: var(--accent); transition: width .3s ease; }
.bar.completed > div { background: var(--ok); } .bar.failed > div { background: var(--bad); }
.bar.big { height: 14px; border-radius: 7px; }
/* A high-contrast theme (forced colours) takes every background away, the bars' with them: the list's
   bars, with no percentage beside them, showed nothing. The bar gets an edge, its fill the text colour. */
@media (forced-colors: active) { .bar { border: 1px solid CanvasText; } .bar > div { forced-color-adjust: none; background: CanvasText; } }
#detail { display: grid; gap: 16px; align-content: start; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin-top: 12px; }
.facts div { display: grid; } .facts .v { font-weight: 600; }
.task { display: grid; grid-template-columns: minmax(160px, 1fr) 90px 2fr 48px; gap: 10px; align-items: center; padding: 6px 0; border-top: 1px solid var(--line); }
.task .name { word-break: break-word; } .task .pct { text-align: right; font-variant-numeric: tabular-nums; }
.task .err { grid-column: 1 / -1; color: var(--bad); font-size: 12px; }
.sub-error { color: var(--bad); }
#events { list-style: none; margin: 0; padding: 0; font-size: 13px; max-height: 320px; overflow: auto; }
#events li { display: grid; grid-template-columns: 54px 90px 140px 1fr; gap: 8px; padding: 4px 0; border-top: 1px solid var(--line); }
#events .seq { color: var(--muted); font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); }
/* Read by a screen reader, not shown (the status region: what #conn and the overview show already). */
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
/* Narrow (a phone, or a zoomed page: 320 CSS px must not scroll sideways, WCAG 1.4.10): one column, and
   an event's four columns (308 px at least) become two, its seq and time above its type and message. */
@media (max-width: 800px) { main { grid-template-columns: 1fr; } .task { grid-template-columns: 1fr 80px; } .task .bar { grid-column: 1 / -1; }
  #events li { grid-template-columns: auto 1fr; column-gap: 12px; row-gap: 0; } }
`;
