/** Store paths made for a test: files of random bytes added to the host's Nix store. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function addRandomFiles(count: number, bytes: number, label: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'lb-inputs-'));
  return Array.from({ length: count }, (_, i) => {
    const file = join(dir, `${label}-${i}-${Date.now()}.bin`);
    writeFileSync(file, randomBytes(bytes));
    return execFileSync('nix-store', ['--add', file], { encoding: 'utf8' }).trim();
  });
}

/** One store path of mib MiB of random bytes, written a MiB at a time (it may be larger than memory wants). */
export async function addRandomStorePath(mib: number, label: string): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'lb-bench-input-')), `${label}-${mib}M-${Date.now()}.bin`);
  const out = createWriteStream(file);
  for (let i = 0; i < mib; i++) if (!out.write(randomBytes(1 << 20))) await once(out, 'drain');
  out.end();
  await once(out, 'close');
  return execFileSync('nix-store', ['--add', file], { encoding: 'utf8' }).trim();
}
