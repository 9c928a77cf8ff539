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

/** dir/nc: `nc -U PATH`, the ProxyCommand of an ssh_config that reaches a unix socket, for hosts without netcat. */
export async function installNcShim(dir: string): Promise<string> {
  const path = join(dir, 'nc');
  const relay = "const s=require('net').connect(process.argv[1]);process.stdin.pipe(s);s.pipe(process.stdout);s.on('close',()=>process.exit(0));s.on('error',(e)=>{console.error(e.message);process.exit(1)})";
  await writeFile(path, `#!/bin/sh\n[ "$1" = -U ] || { echo "nc shim: only -U PATH" >&2; exit 2; }\nexec '${process.execPath}' -e "${relay}" "$2"\n`);
  await chmod(path, 0o755);
  return path;
}
