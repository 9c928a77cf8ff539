import { test } from 'node:test';
import assert from 'node:assert/strict';
import { candidatePaths, guestRegisterCommand, hostRootsDir } from '../../../src/nix/store-sync.js';

test('only store paths are candidates: no locks, no .links, no .drv', () => {
  const names = [
    '.links',
    'ns9s42sh24izrkay2prr59vvqykm4ppm-busybox-arm64',
    'hxhfr4vssis98rqrza6ykbxqpbmi3axf-too-big.lock',
    'fqgm9x5cvghkncxaf0p0ikwx3n3q950k-too-big.drv',
    'not-a-store-path',
  ];
  assert.deepEqual(candidatePaths(names), ['/nix/store/ns9s42sh24izrkay2prr59vvqykm4ppm-busybox-arm64']);
});

test('the guest registers, roots every host path against its own GC, then drops dentries', () => {
  const command = guestRegisterCommand(['/nix/store/a-x', '/nix/store/b-y']);
  assert.equal(
    command,
    [
      'nix-store --load-db',
      `mkdir -p ${hostRootsDir}`,
      `cd ${hostRootsDir}`,
      "ln -sfn '/nix/store/a-x' '/nix/store/b-y' .",
      'cd /nix/.rw-store/upper',
      `for p in 'a-x' 'b-y'; do if [ -c "$p" ]; then rm -f "$p"; fi; done`,
      'echo 2 > /proc/sys/vm/drop_caches',
    ].join(' && '),
  );
  assert.match(hostRootsDir, /^\/nix\/var\/nix\/gcroots\//);
});
