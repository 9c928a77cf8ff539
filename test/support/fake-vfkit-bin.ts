/** Puts the fake vfkit on a PATH directory as `vfkit`: a shell script that execs Node on fake-vfkit.ts (same pid). */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fakeVfkitScript = fileURLToPath(new URL('./fake-vfkit.ts', import.meta.url));

/** Writes dir/vfkit and returns its path. */
export async function installFakeVfkit(dir: string): Promise<string> {
  const tsx = import.meta.resolve('tsx');
  const path = join(dir, 'vfkit');
  const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  await writeFile(path, `#!/bin/sh\nexec ${quote(process.execPath)} --import ${quote(tsx)} ${quote(fakeVfkitScript)} "$@"\n`);
  await chmod(path, 0o755);
  return path;
}
