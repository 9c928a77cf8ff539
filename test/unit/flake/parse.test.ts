/** Every .nix file of the repository parses (nix-instantiate --parse), whether or not a test evaluates it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { noNix, repoRoot } from '../../support/nix-eval.js';

/** Tracked files and new ones not ignored: what a commit would hold. */
function nixFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', '*.nix'], { cwd: repoRoot, encoding: 'utf8' })
    .split('\n')
    .filter((file) => file !== '');
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
