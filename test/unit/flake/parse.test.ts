/** Every .nix file of the repository parses (nix-instantiate --parse), whether or not a test evaluates it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { noNix, repoRoot } from '../../support/nix-eval.js';

/** The repository's .nix files, found by walking it (a copy without .git, or a tarball, has them too). */
function nixFiles(dir = repoRoot): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return entry.name.startsWith('.') || ['node_modules', 'dist'].includes(entry.name) ? [] : nixFiles(join(dir, entry.name));
    return entry.isFile() && entry.name.endsWith('.nix') ? [relative(repoRoot, join(dir, entry.name))] : [];
  });
}

test('every .nix file parses', { skip: noNix }, () => {
  const files = nixFiles();
  for (const expected of ['flake.nix', 'nix/package.nix', 'nix/modules/nixos.nix', 'nix/modules/darwin.nix', 'nix/modules/common.nix']) {
    assert.ok(files.includes(expected), `${expected} among ${files.join(', ')}`);
  }
  const failures = files.flatMap((file) => {
    const result = spawnSync('nix-instantiate', ['--parse', join(repoRoot, file)], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    return result.status === 0 ? [] : [`${file}: ${result.stderr.trim()}`];
  });
  assert.deepEqual(failures, []);
});
