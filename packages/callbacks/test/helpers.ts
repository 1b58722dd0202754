import { ProgressTracker, type Logger } from '@progress/core';
import type { CallbackManager } from '../src/index.js';

let counter = 0;

/** A real tracker whose only sink is `manager`. */
export function openTracker(manager: CallbackManager, upgradeId = `cb-test-${++counter}`): Promise<ProgressTracker> {
  return ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'test-cluster', sinks: [manager] });
}

/** A pino-compatible logger that records what it is told. */
export function recordingLogger(): Logger & { lines: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> } {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, obj: obj as Record<string, unknown>, msg });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A promise and its resolve/reject functions. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
