import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A child process running a fixture script through tsx, with its stdout split into lines. */
export interface Child {
  process: ChildProcess;
  /** Resolves with the next line of stdout. */
  line(): Promise<string>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Spawns `test/fixtures/<name>.ts` with `config` in PROGRESS_TEST. */
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
    line: () => {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        void exited.then((code) => reject(new Error(`fixture ${name} exited (${code}) before printing a line`)));
      });
    },
    exited,
  };
}
