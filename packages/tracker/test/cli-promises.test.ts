// What the README promises a new user, found not kept by a review on 2026-11-29 (each test failed
// before the fix): options that do not apply are refused, a port in use is not bad usage, a string
// value is shown as a string, and the demo's hints name a command that works.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore, ProgressWebSocketServer, createProgressTracker } from '../src/index.js';
import { runDemo } from '../src/cli/demo.js';
import { selfCommand } from '../src/cli/main.js';
import { LiveView } from '../src/cli/terminal.js';
import { Capture, cleanupTempDirs, completedUpgrade, runCli, tempDir } from './helpers.js';

afterAll(() => cleanupTempDirs());

const run = runCli;

async function seededFolder(): Promise<string> {
  const dir = tempDir('cli-promises');
  await completedUpgrade('done', { json: dir });
  return dir;
}

describe('progress watch: options that do not apply to the source are refused, not ignored', () => {
  it('watch <json-dir> --token is refused with exit 2 (as --prefix with a folder is)', async () => {
    const dir = await seededFolder();
    const r = await run('watch', dir, 'done', '--token', 'abc');
    expect(r.code).toBe(2); // it was 0: the token was silently ignored
    expect(r.err).toMatch(/--token goes with a ws:\/\/ source/);
  });

  it('watch <json-dir> --connect-timeout is refused with exit 2', async () => {
    const dir = await seededFolder();
    const r = await run('watch', dir, 'done', '--connect-timeout', '5');
    expect(r.code).toBe(2); // it was 0
  });
});

describe('a port already in use is not bad usage', () => {
  it('demo --port <taken> does not exit 2 and says the port is in use', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      const dir = tempDir('cli-promises-demo');
      const r = await run('demo', '--dir', dir, '--port', String(port), '--speed', '1000', '--linger', '0');
      expect(r.err).toMatch(/in use/);
      expect(r.code).toBe(4); // it was 2 (ws-server reported EADDRINUSE as INVALID_ARGUMENT)
      // Nothing recorded: the upgrade was created before the server failed to start (found 2026-11-29).
      const store = new JsonFileStore({ directory: dir });
      try {
        expect(await store.list()).toEqual([]);
      } finally {
        await store.close();
      }
    } finally {
      holder.close();
    }
  });

  it('demo --host it cannot listen on: exit 2, and nothing recorded', async () => {
    const dir = tempDir('cli-promises-demo-host');
    const r = await run('demo', '--dir', dir, '--host', '999.1.1.1', '--port', '0', '--speed', '1000', '--linger', '0');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot listen on 999\.1\.1\.1:0/);
    const store = new JsonFileStore({ directory: dir });
    try {
      expect(await store.list()).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('demo --host it cannot listen on, or --port in use: the --dir folder it names is not created', async () => {
    // Bad usage writes nothing: the folder was made before the listen check, and stayed behind empty
    // (found 2026-11-29: `progress demo --host 999.1.1.1` left ./progress-demo-data in the working directory).
    const dir = join(tempDir('cli-promises-demo-nodir'), 'data');
    const r = await run('demo', '--dir', dir, '--host', '999.1.1.1', '--port', '0', '--speed', '1000', '--linger', '0');
    expect(r.code).toBe(2);
    expect(existsSync(dir)).toBe(false);
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const taken = await run('demo', '--dir', dir, '--port', String((holder.address() as AddressInfo).port), '--speed', '1000', '--linger', '0');
      expect(taken.code).toBe(4);
      expect(existsSync(dir)).toBe(false);
    } finally {
      holder.close();
    }
  });

  it('demo --dir with --redis: exit 2, and neither store is used', async () => {
    const dir = join(tempDir('cli-promises-demo-both'), 'data');
    const r = await run('demo', '--dir', dir, '--redis', 'redis://127.0.0.1:1', '--port', '0', '--speed', '1000', '--linger', '0');
    expect({ code: r.code, err: r.err }).toEqual({ code: 2, err: 'progress: give --dir or --redis, not both\n' });
    expect(existsSync(dir)).toBe(false);
  });

  it('demo --dir naming a file: exit 2, "not a folder", as ls says it', async () => {
    const file = join(tempDir('cli-promises-demo-file'), 'a-file');
    await writeFile(file, 'x');
    const r = await run('demo', '--dir', file, '--port', '0', '--speed', '1000', '--linger', '0');
    expect(r.code).toBe(2);
    expect(r.err).toContain(`not a folder: ${file}`);
    expect(await run('ls', file)).toMatchObject({ code: 2, err: expect.stringContaining(`not a folder: ${file}`) });
  });

  it('demo without --port, 8765 taken: says so, serves on a free port, and records one upgrade', async () => {
    const holder: Server = createServer();
    // Held here, or by something else on this machine: taken either way.
    await new Promise<void>((resolve) => holder.once('error', () => resolve()).listen(8765, '127.0.0.1', resolve));
    try {
      const dir = tempDir('cli-promises-demo-default');
      const r = await run('demo', '--dir', dir, '--speed', '1000', '--linger', '0');
      expect(r.code).toBe(0);
      // The dashboard URL still comes first (README), on the port the note names.
      const [first, second] = r.out.split('\n');
      const port = /^Dashboard: http:\/\/127\.0\.0\.1:(\d+)\/$/.exec(first!)?.[1];
      expect(port, first).toBeDefined();
      expect(port).not.toBe('8765');
      expect(second).toBe(`port 8765 is taken; using ${port}`);
      const store = new JsonFileStore({ directory: dir });
      try {
        expect((await store.list()).map((row) => [row.upgradeId, row.status])).toEqual([['eks-demo', 'completed']]);
      } finally {
        await store.close();
      }
    } finally {
      holder.close();
    }
  });

  it('ProgressWebSocketServer.start() on a taken port rejects with a code other than INVALID_ARGUMENT', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    const server = new ProgressWebSocketServer({ port });
    try {
      const error = await server.start().then(() => undefined, (e: unknown) => e as { code?: string });
      expect(error?.code).toBe('CONFLICT');
    } finally {
      await server.stop();
      holder.close();
    }
  });
});

describe('error messages quote a bad string value', () => {
  it('a string port is shown as a string, not as a valid-looking number', () => {
    expect(() => new ProgressWebSocketServer({ port: '8765' as unknown as number })).toThrow(/"8765"/);
  });
  it('createProgressTracker({ webSocketPort: "8765" }) says it got a string', async () => {
    await expect(createProgressTracker({ upgradeId: 'u', planId: 'p', clusterName: 'c', webSocketPort: '8765' as unknown as number })).rejects.toThrow(/"8765"/);
  });
});

describe("the demo's hints and the usage", () => {
  it('name a command that runs: node and the script in this repository, npx progress from an installed package', () => {
    expect(selfCommand('/repo/packages/tracker/dist/cli/bin.js', '/repo')).toBe('node packages/tracker/dist/cli/bin.js');
    expect(selfCommand('/elsewhere/packages/tracker/dist/cli/bin.js', '/repo')).toBe('node /elsewhere/packages/tracker/dist/cli/bin.js');
    expect(selfCommand('/app/node_modules/@progress/tracker/dist/cli/bin.js', '/app')).toBe('npx progress');
    expect(selfCommand('/app/node_modules/.bin/progress', '/app')).toBe('npx progress');
  });

  it('quote a path with a space or a shell character, so that the command can be pasted into a shell', async () => {
    expect(selfCommand("/My Projects/it's/packages/tracker/dist/cli/bin.js", '/repo')).toBe(`node '/My Projects/it'\\''s/packages/tracker/dist/cli/bin.js'`);
    expect(selfCommand('/My Projects/progress/packages/tracker/dist/cli/bin.js', '/My Projects/progress')).toBe('node packages/tracker/dist/cli/bin.js');
    const directory = join(tempDir('demo hint'), 'my data');
    const lines: string[] = [];
    const tracker = await runDemo({
      directory,
      port: 0,
      speed: 1000,
      lingerSeconds: 0,
      view: new LiveView({ out: new Capture() as unknown as NodeJS.WriteStream }),
      signal: new AbortController().signal,
      print: (line) => lines.push(line),
      command: 'npx progress',
    });
    await tracker.close();
    // It printed `npx progress ls /tmp/.../my data`: two arguments, refused with exit 2.
    expect(lines).toContain(`Storage:   ${directory}   (npx progress ls '${directory}')`);
  });

  it('progress with no command prints the usage on stderr (exit 2), and on stdout when asked for', async () => {
    const bare = await run();
    expect({ code: bare.code, out: bare.out, usage: bare.err.includes('progress demo') }).toEqual({ code: 2, out: '', usage: true });
    const asked = await run('--help');
    expect({ code: asked.code, err: asked.err, usage: asked.out.includes('progress demo') }).toEqual({ code: 0, err: '', usage: true });
    // `progress help` too, as the README says.
    const help = await run('help');
    expect({ code: help.code, err: help.err, usage: help.out.includes('progress demo') }).toEqual({ code: 0, err: '', usage: true });
    // And the short forms the README gives, `-h` and `-v`.
    const short = await run('-h');
    expect({ code: short.code, err: short.err, usage: short.out.includes('progress demo') }).toEqual({ code: 0, err: '', usage: true });
    const version = await run('-v');
    expect({ code: version.code, err: version.err, out: version.out }).toEqual({ code: 0, err: '', out: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });
});

describe('createProgressTracker options', () => {
  it('refuses an option name it does not know, naming the nearest one it does (a misspelt storage left the store in memory)', async () => {
    const base = { upgradeId: 'u', planId: 'p', clusterName: 'c' };
    await expect(createProgressTracker({ ...base, storge: 'memory' } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('unknown option "storge" (did you mean "storage"?)') });
    await expect(createProgressTracker({ ...base, colour: true } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/unknown option "colour"$/) });
    // The old module's snake_case names are known.
    const t = await createProgressTracker({ upgrade_id: 'u2', plan_id: 'p', cluster_name: 'c' } as never);
    await t.close();
  });
});
