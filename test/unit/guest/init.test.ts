import assert from 'node:assert/strict';
import { test } from 'node:test';
import { etcFiles, initScript, inittab, rcBuilder, sshdConfig } from '../../../src/guest/init.js';
import { failedMarker, readyMarker, shareTags } from '../../../src/guest/layout.js';

const rc = rcBuilder({
  earlyModules: ['virtio_ring', 'virtio_mmio', '9pnet', '9pnet_virtio', '9p'],
  lateModules: ['net_failover', 'virtio_net', 'overlay', 'binfmt_misc'],
  cache: 'loose',
  sshdNoReexec: true,
});
const lines = rc.split('\n');
const lineOf = (pattern: RegExp) => {
  const index = lines.findIndex((line) => pattern.test(line));
  assert.ok(index >= 0, `no line matches ${pattern}`);
  return index;
};

test('/init execs busybox init, which runs rc.builder as sysinit', () => {
  assert.equal(initScript(), '#!/bb/sh\nexec /bb/init\n');
  assert.match(inittab(), /^::sysinit:\/etc\/rc\.builder$/m);
});

test('modules are loaded in the given order, early ones before sshd, late ones after', () => {
  const insmods = lines.filter((line) => line.startsWith('insmod ')).map((line) => line.split(' ')[1]);
  assert.deepEqual(insmods, [
    '/modules/virtio_ring.ko',
    '/modules/virtio_mmio.ko',
    '/modules/9pnet.ko',
    '/modules/9pnet_virtio.ko',
    '/modules/9p.ko',
    '/modules/net_failover.ko',
    '/modules/virtio_net.ko',
    '/modules/overlay.ko',
    '/modules/binfmt_misc.ko',
  ]);
  const sshd = lineOf(/\/opt\/ssh\/sshd /);
  assert.ok(lineOf(/insmod \/modules\/9p\.ko/) < sshd);
  assert.ok(lineOf(/insmod \/modules\/overlay\.ko/) > sshd);
});

test('9p shares are mounted read-only with the chosen cache mode', () => {
  assert.match(rc, new RegExp(`mount -t 9p -o trans=virtio,version=9p2000\\.L,msize=512000,cache=loose,ro ${shareTags.usr} /usr `));
  assert.match(rc, new RegExp(`cache=loose,ro ${shareTags.store} /nix/\\.ro-store `));
  assert.match(rcBuilder({ earlyModules: [], lateModules: [], cache: 'none' }), /cache=none,ro hostusr/);
  assert.match(rc, /lowerdir=\/nix\/\.ro-store,upperdir=\/nix\/\.rw-store\/upper,workdir=\/nix\/\.rw-store\/work overlay \/nix\/store/);
});

test('keys are copied from the config share with umask 077, and the share is unmounted before sshd starts', () => {
  const mount = lineOf(new RegExp(`mount -t 9p .* ${shareTags.config} /run/lbconfig`));
  const umask = lineOf(/^umask 077$/);
  const copyKey = lineOf(/^cp \/run\/lbconfig\/ssh_host_ed25519_key \/etc\/ssh\/ssh_host_ed25519_key /);
  const copyAuth = lineOf(/^cp \/run\/lbconfig\/authorized_keys \/root\/\.ssh\/authorized_keys /);
  const umount = lineOf(/^umount \/run\/lbconfig$/);
  const sshd = lineOf(/\/opt\/ssh\/sshd /);
  assert.ok(mount < umask && umask < copyKey && copyKey < copyAuth && copyAuth < umount && umount < sshd);
});

test('binfmt lines are written verbatim (printf, not echo) after binfmt_misc is mounted', () => {
  assert.ok(lineOf(/mount -t binfmt_misc/) < lineOf(/binfmt_misc\/register/));
  assert.match(rc, /printf '%s\\n' "\$entry" > \/proc\/sys\/fs\/binfmt_misc\/register/);
});

test('sshd runs by absolute path with its config, -r only when asked', () => {
  assert.match(rc, /LD_LIBRARY_PATH=\/opt\/ssh\/lib \/opt\/ssh\/sshd -r -f \/etc\/ssh\/sshd_config /);
  assert.doesNotMatch(rcBuilder({ earlyModules: [], lateModules: [], cache: 'loose' }), /sshd -r/);
});

test('the ready marker is the last thing printed, after sshd listens; failures print the failed marker', () => {
  const ready = lineOf(new RegExp(`^echo ${readyMarker} > /dev/console$`));
  assert.ok(lineOf(/while \[ ! -s \/run\/sshd\.pid \]/) < ready);
  assert.ok(lineOf(/^t store$/) < ready && lineOf(/^t binfmt$/) < ready);
  assert.equal(lines.slice(ready + 1).join(''), '');
  assert.match(rc, new RegExp(`echo "${failedMarker}: \\$\\*" > /dev/console`));
  assert.match(rc, /^t\(\) \{ read -r up _ < \/proc\/uptime; echo "\[rc \$up\] \$\*"/m);
});

test('sshd_config allows keys only and never PAM', () => {
  const config = sshdConfig(['SshdSessionPath /opt/ssh/sshd-session']);
  for (const line of [
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'PermitRootLogin prohibit-password',
    'UseDNS no',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'MaxStartups 20:30:100',
    'KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256',
    'SshdSessionPath /opt/ssh/sshd-session',
  ]) {
    assert.match(config, new RegExp(`^${line}$`, 'm'));
  }
});

test('nothing generated holds key material', () => {
  const everything = [rc, sshdConfig(), inittab(), initScript(), ...Object.values(etcFiles()).map((f) => f.text)].join('\n');
  assert.doesNotMatch(everything, /PRIVATE KEY|ssh-ed25519 AAAA|ssh-rsa AAAA/);
});

test('/etc has root and the sshd privilege-separation user; shadow is 0600', () => {
  const etc = etcFiles();
  assert.match(etc.passwd?.text ?? '', /^root:x:0:0:root:\/root:\/bin\/sh$/m);
  assert.match(etc.passwd?.text ?? '', /^sshd:x:/m);
  assert.equal(etc.shadow?.mode, 0o600);
  assert.match(etc['resolv.conf']?.text ?? '', /nameserver 10\.0\.2\.3/);
});
