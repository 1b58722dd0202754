import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A test script run through tsx in its own process, its stdout read line by line. */
export interface Child {
  process: ChildProcess;
  /** The next stdout line. */
  line(): Promise<string>;
  /** The next stdout line, parsed as JSON. */
  next<T>(): Promise<T>;
  exited: Promise<number | null>;
  /** Ends stdin (the fixture's signal to stop) and waits for the exit; kills it after 5 s. */
  stop(): Promise<void>;
}

const root = fileURLToPath(new URL('../../../', import.meta.url));


/**
 * Runs `script` (a .ts file) in a child process through tsx, with the `@progress/source` condition,
 * from the repository root, with `config` as JSON in the PROGRESS_TEST environment variable.
 */
export function spawnScript(script: string | URL, config: object): Child {
  const path = typeof script === 'string' ? script : fileURLToPath(script);
  const name = path.split('/').pop();
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', path], {
    cwd: root,
    env: { ...process.env, PROGRESS_TEST: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = (): Promise<string> => {
    const ready = lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise<string>((resolve, reject) => {
      waiting.push(resolve);
      void exited.then((code) => reject(new Error(`${name} exited (${code}) before printing a line`)));
    });
  };
  return {
    process: child,
    line,
    next: async <T>() => JSON.parse(await line()) as T,
    exited,
    stop: async () => {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
