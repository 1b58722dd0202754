/**
 * The local EventBridge endpoint in a child process, so that its CPU time is not taken from the
 * process under measurement (EventBridge is remote, after all). Run as a script, it is the child.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEventBridgeEndpoint } from '../../test-utils/src/eventbridge-endpoint.js';

/** What the child reports. */
export interface RemoteStats {
  requests: number;
  entries: number;
  /** Distinct `event_id`s among the accepted entries. */
  unique: number;
  maxEntriesPerRequest: number;
}

/** A handle on the child. */
export interface RemoteEndpoint {
  url: string;
  stats(): Promise<RemoteStats>;
  close(): Promise<void>;
}

type Message = { type: 'ready'; url: string } | { type: 'stats'; stats: RemoteStats };

function nextMessage<T extends Message['type']>(child: ChildProcess, type: T): Promise<Extract<Message, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Message): void => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as Extract<Message, { type: T }>);
    };
    const onExit = (code: number | null): void => reject(new Error(`endpoint process exited (${code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Starts the endpoint in a child process (inheriting tsx's loader from execArgv). */
export async function startRemoteEndpoint(latencyMs: number): Promise<RemoteEndpoint> {
  const child = fork(fileURLToPath(import.meta.url), ['--child', String(latencyMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { url } = await nextMessage(child, 'ready');
  return {
    url,
    async stats() {
      const reply = nextMessage(child, 'stats');
      child.send({ type: 'stats' });
      return (await reply).stats;
    },
    close() {
      return new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.send({ type: 'close' });
      });
    },
  };
}

if (process.argv[2] === '--child' && process.send) {
  process.removeAllListeners('warning');
  const endpoint = await startEventBridgeEndpoint({ latencyMs: Number(process.argv[3]) });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats') {
      const stats: RemoteStats = {
        requests: endpoint.requests.length,
        entries: endpoint.entries.length,
        unique: new Set(endpoint.entries.map((e) => e.detail?.event_id)).size,
        maxEntriesPerRequest: endpoint.requests.reduce((n, r) => Math.max(n, r.entries.length), 0),
      };
      process.send!({ type: 'stats', stats });
    } else if (m.type === 'close') {
      void endpoint.close().then(() => process.exit(0));
    }
  });
  process.send({ type: 'ready', url: endpoint.url });
}
