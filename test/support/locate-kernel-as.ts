/**
 * Runs locateKernel over a fake host in this process and prints what it found and logged, as
 * JSON. The unit test runs it compiled (test/support/compiled-copy.ts) as an unprivileged user,
 * so file permissions are real: root reads every file, whatever its mode.
 */
import { locateKernel } from '../../src/guest/kernel-source.js';

const roots = JSON.parse(process.argv[2] ?? '{}') as { bootDir: string; modulesRoot: string; cacheDir: string };
const lines: string[] = [];
const found = await locateKernel({
  ...roots,
  hostArch: 'x86_64',
  log: (line) => lines.push(line),
  // No host kernel must mean an error here, never a download.
  run: async () => ({ code: 1, stdout: '', stderr: 'no apt in this test' }),
});
process.stdout.write(JSON.stringify({ version: found.version, lines }));
