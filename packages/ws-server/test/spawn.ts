import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A fixture script run through tsx in its own process, its stdout read as JSON lines. */
export interface Child {
  process: ChildProcess;
  /** The next stdout line, parsed as JSON. */
  next<T>(): Promise<T>;
  exited: Promise<number | null>;
  /** Ends stdin (the fixture's signal to stop) and waits for the exit; kills it after 5 s. */
  stop(): Promise<void>;
}

const root = fileURLToPath(new URL('../../../', import.meta.url));

export function spawnFixture(name: string, config: object): Child {
  const script = fileURLToPath(new URL(`./fixtures/${name}.ts`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', script], {
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
  return {
    process: child,
    next: <T>() => {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(JSON.parse(ready) as T);
      return new Promise<T>((resolve, reject) => {
        waiting.push((line) => resolve(JSON.parse(line) as T));
        void exited.then((code) => reject(new Error(`fixture ${name} exited (${code}) before printing a line`)));
      });
    },
    exited,
    stop: async () => {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
