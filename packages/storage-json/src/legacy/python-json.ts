const PYTHON_FLOATS = ['-Infinity', 'Infinity', 'NaN'] as const;

/**
 * Parses JSON written by Python's `json.dump`, whose default (`allow_nan=True`) writes float nan and
 * inf as the bare tokens `NaN`, `Infinity` and `-Infinity`, which `JSON.parse` refuses. Those tokens
 * become `null` (JSON has no such numbers); the same words inside strings are left alone. Text that
 * is not valid even so throws `JSON.parse`'s own error.
 */
export function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const cleaned = withoutPythonFloats(text);
    if (cleaned === text) throw err;
    try {
      return JSON.parse(cleaned);
    } catch {
      throw err;
    }
  }
}

/** `text` with every `NaN`, `Infinity` and `-Infinity` outside a string replaced by `null`. */
function withoutPythonFloats(text: string): string {
  let out = '';
  let from = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    if (c !== 'N' && c !== 'I' && c !== '-') continue;
    const token = PYTHON_FLOATS.find((t) => text.startsWith(t, i));
    if (token === undefined) continue;
    out += `${text.slice(from, i)}null`;
    i += token.length - 1;
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}
