import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from './helpers.js';

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL('..', import.meta.url));

describe('examples/eks-agent.ts (the old module example)', () => {
  it('runs four tasks with progress, completes, and prints the summary', async () => {
    const dir = tempDir('example');
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', 'examples/eks-agent.ts', dir], { cwd: packageDir });
      expect(stdout.match(/^\[done\] {2}/gm)).toHaveLength(4);
      expect(stdout).toContain('overall: 25%');
      expect(stdout).toContain('overall: 100%');
      const summary = JSON.parse(stdout.slice(stdout.indexOf('{'))) as Record<string, unknown>;
      expect(summary).toMatchObject({ status: 'completed', totalTasks: 4, completedTasks: 4, overallPercentage: 100, clusterName: 'my-eks-cluster' });
    } finally {
      cleanupTempDirs();
    }
  });
});
