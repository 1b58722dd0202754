export { createDashboardHandler, DASHBOARD_CSP } from './handler.js';
export type { DashboardOptions } from './handler.js';
export { dashboardHtml } from './page.js';
export { DASHBOARD_SCRIPT } from './script.js';
export { DASHBOARD_STYLE } from './style.js';
