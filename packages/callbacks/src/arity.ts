/**
 * Whether `fn` may read its argument at `index` (0-based). The state copy is only made for a
 * callback that may read it. True unless the source shows for certain that it cannot: a plain
 * parameter list of fewer names, with no default value, rest or destructuring, and for a
 * non-arrow function no use of `arguments`. Anything else (a method, a bound or native function,
 * a comment in the list) counts as may-read. Runs once, when the callback is registered.
 */
export function mayReadArgument(fn: (...args: never[]) => unknown, index: number): boolean {
  if (fn.length > index) return true;
  let source: string;
  try {
    source = Function.prototype.toString.call(fn);
  } catch {
    return true;
  }
  // A bound or native function shows no source.
  if (source.endsWith('{ [native code] }')) return true;
  // `function name(a, b) {`, `async function (a) {`, `(a, b) =>`, `async (a) =>`, `a =>`, `async a =>`.
  const match = /^(async\s+)?(?:(function\b\s*\*?\s*[\w$]*\s*)?\(([^()]*)\)\s*(=>)?|([A-Za-z_$][\w$]*)\s*=>)/.exec(source);
  if (!match) return true;
  const [, , keyword, list, arrow, single] = match;
  const isArrow = single !== undefined || arrow !== undefined;
  if (!isArrow && keyword === undefined) return true;
  const params = single ?? list ?? '';
  if (/[^\w$\s,]/.test(params)) return true;
  const count = params.trim() === '' ? 0 : params.split(',').length;
  if (count > index) return true;
  return !isArrow && /\barguments\b/.test(source);
}
