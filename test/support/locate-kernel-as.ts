/**
 * Runs locateKernel over a fake host in this process and prints what it found and logged, as
 * JSON. Started by a test running as root, it becomes the user given (uid:gid) once its modules
 * are loaded, so file permissions are real wherever the checkout is (the modules load as root).
 */
import { locateKernel } from '../../src/guest/kernel-source.js';

const roots = JSON.parse(process.argv[2] ?? '{}') as { bootDir: string; modulesRoot: string; cacheDir: string };
const [uid, gid] = (process.argv[3] ?? '').split(':').map(Number);
if (uid !== undefined && gid !== undefined && !Number.isNaN(uid) && !Number.isNaN(gid)) {
  process.setgroups?.([]);
  process.setgid?.(gid);
  process.setuid?.(uid);
}
const lines: string[] = [];
const found = await locateKernel({
  ...roots,
  hostArch: 'x86_64',
  log: (line) => lines.push(line),
  // No host kernel must mean an error here, never a download.
  run: async () => ({ code: 1, stdout: '', stderr: 'no apt in this test' }),
});
process.stdout.write(JSON.stringify({ version: found.version, lines }));
