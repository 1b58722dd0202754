import { describe, expect, it } from 'vitest';
import { ProgressTracker } from '../src/index.js';

const open = () => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });

describe('subscribe() on a closed tracker', () => {
  it('is refused with CLOSED, as every command is, rather than kept for events that never come', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.close();
    // A program waiting for the upgrade's end this way waited for ever, without a word.
    const heard: number[] = [];
    const waitForEnd = () => new Promise<void>((resolve) => t.subscribe((e) => { heard.push(e.seq); if (e.type === 'upgrade.completed') resolve(); }));
    const stillWaiting = new Promise<string>((resolve) => setTimeout(resolve, 500, 'still waiting').unref());
    await expect(Promise.race([waitForEnd(), stillWaiting])).rejects.toMatchObject({ name: 'ProgressError', code: 'CLOSED', message: expect.stringContaining('"u1" is closed') });
    // Nothing registered: the listener is not held for the life of the tracker.
    expect(t.getSystemInfo().subscribers).toBe(0);
    expect(heard).toEqual([]);
  });

  it('is refused once close() is called, before it is done', async () => {
    const t = await open();
    const closing = t.close();
    expect(() => t.subscribe(() => {})).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await closing;
    expect(t.getSystemInfo().subscribers).toBe(0);
  });

  it('still checks the listener first, and its unsubscribe functions still work after close', async () => {
    const t = await open();
    const off = t.subscribe(() => {});
    await t.close();
    expect(() => t.subscribe('x' as never)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => off()).not.toThrow();
  });
});
