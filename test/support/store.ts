/** Store paths made for a test: files of random bytes added to the host's Nix store. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
