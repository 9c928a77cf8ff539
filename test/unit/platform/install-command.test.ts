import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostPackages, installCommand } from '../../../src/platform/install-command.js';

test('each missing tool is named by the exact command that installs it, per platform and user', () => {
  const table: [Parameters<typeof installCommand>, string][] = [
    [[hostPackages.qemuX86, 'linux', 0], 'apt-get install qemu-system-x86'],
    [[hostPackages.qemuArm, 'linux', 1000], 'sudo apt-get install qemu-system-arm'],
    [[hostPackages.qemuX86, 'darwin', 501], 'brew install qemu'],
    [[hostPackages.nix, 'linux', 1000], 'sudo apt-get install nix-bin'],
    [[hostPackages.nix, 'darwin', 501], 'sh <(curl -L https://nixos.org/nix/install)'],
    [[hostPackages.qemuUser, 'linux', 0], 'apt-get install qemu-user-static'],
    [[hostPackages.iproute2, 'linux', 0], 'apt-get install iproute2'],
    [[hostPackages.busybox, 'linux', 0], 'apt-get install busybox-static'],
  ];
  for (const [args, want] of table) assert.equal(installCommand(...args), want, JSON.stringify(args));
});
