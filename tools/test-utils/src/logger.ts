/** What one call to a {@link throwingLogger} was given. */
export interface LoggedCall {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

/**
 * A pino-compatible logger whose every method throws after recording its call, as a logger whose
 * transport closed does: for tests that a package's logging cannot fail what it logs about.
 */
export function throwingLogger(): { logger: Record<LoggedCall['level'], (obj: object, msg?: string) => void>; calls: LoggedCall[] } {
  const calls: LoggedCall[] = [];
  const method =
    (level: LoggedCall['level']) =>
    (obj: object, msg?: string): never => {
      calls.push({ level, obj, msg });
      throw new Error('log transport closed');
    };
  return { logger: { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') }, calls };
}
