/**
 * A connection URL without its secrets, for messages, logs and `info()`: the password of the user
 * part and the value of every query parameter whose name holds `password`, `token` or `secret` become
 * `***`; the rest (scheme, user name, host, port, path, other parameters) stays, so that the reader
 * still sees where the connection goes.
 *
 * Parameter names are matched as ioredis reads them, percent-decoded (`?pass%77ord=` is a password).
 * The URL is read as ioredis and ws read it (WHATWG `URL`), unless an `@` is left outside the user
 * part it found: then the password holds `/`, `?`, `#` or `@` unescaped, and the parser took a part of
 * it for the host, port, path, query or fragment. Such a URL, and one the parser refuses, is masked as
 * text: the secret parameters first (an `@` in their values is theirs), then everything after the
 * first `:` of the user part up to the last `@` left. When in doubt, too much is masked rather than
 * too little (a plain parameter value holding an `@` then garbles the host shown). A URL without
 * `scheme://` (`user:pass@host:6379`, which ioredis takes) is masked the same way.
 *
 * @example
 * redactUrl('redis://default:s3cr3t@127.0.0.1:6379/2?token=abc'); // 'redis://default:***@127.0.0.1:6379/2?token=***'
 */
export function redactUrl(url: string): string {
  const text = String(url);
  const parsed = parsedUrl(text);
  if (parsed && !parsed.host.includes('@') && !`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) {
    if (parsed.password) parsed.password = '***';
    return secretParams(parsed.toString());
  }
  const masked = secretParams(text);
  // With or without `scheme://`.
  const user = /^([a-z][a-z0-9+.-]*:\/\/|\/\/)?([^]*)@/i.exec(masked);
  if (!user) return masked;
  const colon = user[2]!.indexOf(':');
  return `${user[1] ?? ''}${colon < 0 ? user[2] : `${user[2]!.slice(0, colon)}:***`}@${masked.slice(user[0].length)}`;
}

const SECRET_PARAM = /password|token|secret/i;

function secretParams(text: string): string {
  return text.replace(/([?&])([^=&#]*)=([^&#]*)/g, (whole, lead: string, key: string) => (SECRET_PARAM.test(decoded(key)) ? `${lead}${key}=***` : whole));
}

function decoded(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

function parsedUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
