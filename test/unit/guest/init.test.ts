import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { collectorScript, nixDaemonWrapper } from '../../../src/guest/collector.js';
import { buildNetworkRules, buildUsers, etcFiles, fstab, guestPaths, initScript, inittab, rcBuilder, sessionPath, sshdConfig } from '../../../src/guest/init.js';
import { failedMarker, readyMarker, shareTags } from '../../../src/guest/layout.js';

const modules = {
  boot: [['virtio_ring', '9pnet'], ['virtio_mmio', '9pnet_virtio', '9p']],
  pci: [['virtio_pci']],
  net: [['net_failover'], ['virtio_net']],
  late: [['overlay', 'binfmt_misc']],
  disk: [['virtio_blk', 'jbd2', 'mbcache'], ['ext4']],
};
const noModules = { boot: [], pci: [], net: [], late: [], disk: [] };
const rc = rcBuilder({ modules, cache: 'loose', sshdNoReexec: true });
const lines = rc.split('\n');
const lineOf = (pattern: RegExp) => {
  const index = lines.findIndex((line) => pattern.test(line));
  assert.ok(index >= 0, `no line matches ${pattern}`);
  return index;
};

test('/init moves a bind mount of the initramfs over / (Nix\'s sandbox cannot pivot_root away from rootfs), then execs busybox init, which runs rc.builder as sysinit', () => {
  assert.equal(
    initScript(),
    '#!/bb/sh\n/bb/mount --bind / /mnt && cd /mnt && /bb/mount --move . / && exec /bb/chroot . /bb/init\nexec /bb/init\n',
  );
  assert.match(inittab(), /^::sysinit:\/etc\/rc\.builder$/m);
});

test('modules load level by level, a level in parallel; 9p before the mounts, the rest while sshd starts', () => {
  assert.match(rc, /^load\(\) \{ pids=; for m; do \{ insmod \/modules\/\$m\.ko .*\} & pids="\$pids \$!"; done; wait \$pids; \}$/m);
  const loads = lines.filter((line) => /^\s*load /.test(line)).map((line) => line.trim());
  assert.deepEqual(loads, [
    'load virtio_ring 9pnet',
    'load virtio_mmio 9pnet_virtio 9p',
    'load virtio_pci',
    'load net_failover',
    'load virtio_net',
    'load virtio_blk jbd2 mbcache',
    'load ext4',
    'load overlay binfmt_misc',
  ]);
  const sshd = lineOf(/\/opt\/ssh\/sshd /);
  assert.ok(lineOf(/^load virtio_mmio 9pnet_virtio 9p$/) < lineOf(/ hostusr \/usr/));
  assert.ok(lineOf(/^load overlay binfmt_misc$/) > sshd);
  assert.doesNotMatch(rcBuilder({ modules: noModules, cache: 'loose' }), /^\s*load /m);
});

test('virtio_pci loads only when the guest has PCI devices; microvm has none', () => {
  const check = lineOf(/^set -- \/sys\/bus\/pci\/devices\/\*$/);
  assert.equal(lines[check + 1], 'if [ -e "$1" ]; then');
  assert.equal(lines[check + 2], '  load virtio_pci');
  assert.ok(check > lineOf(/^load virtio_mmio /));
  assert.doesNotMatch(rcBuilder({ modules: { ...modules, pci: [] }, cache: 'loose' }), /pci/);
});

test('the network comes up in the background as soon as its modules load; ready waits for it', () => {
  const job = lineOf(/^\{$/);
  assert.deepEqual(lines.slice(job + 1, job + 3), ['  load net_failover', '  load virtio_net']);
  const end = lineOf(/^} &$/);
  assert.ok(lines.slice(job, end).some((line) => line === '  ip addr add 10.0.2.15/24 dev eth0'));
  assert.ok(lineOf(/^wait \$network$/) < lineOf(new RegExp(`^echo ${readyMarker}`)));
});

test('the API file systems are mounted by one mount -a from /etc/fstab', () => {
  assert.ok(lineOf(/^mount -t devtmpfs devtmpfs \/dev/) < lineOf(/^mount -a /));
  assert.match(fstab(), /^devpts \/dev\/pts devpts gid=5,mode=620,ptmxmode=666 0 0$/m);
  for (const mount of ['/proc proc', '/sys sysfs', '/dev/shm tmpfs', '/run tmpfs', '/tmp tmpfs']) {
    assert.match(fstab(), new RegExp(`^\\S+ ${mount} `, 'm'));
  }
  assert.equal(etcFiles().fstab?.text, fstab());
});

test('9p shares are mounted read-only with the chosen cache mode', () => {
  assert.match(rc, new RegExp(`mount -t 9p -o trans=virtio,version=9p2000\\.L,msize=512000,cache=loose,ro ${shareTags.usr} /usr `));
  assert.match(rc, new RegExp(`cache=loose,ro ${shareTags.store} /nix/\\.ro-store `));
  assert.match(rcBuilder({ modules: noModules, cache: 'none' }), /cache=none,ro hostusr/);
  assert.match(rc, /lowerdir=\/nix\/\.ro-store,upperdir=\/nix\/\.rw-store\/upper,workdir=\/nix\/\.rw-store\/work overlay \/nix\/store/);
});

test('keys are copied from the config share with umask 077: the host key before sshd starts, the rest while it starts', () => {
  const mount = lineOf(new RegExp(`mount -t 9p .* ${shareTags.config} /run/lbconfig`));
  const umask = lineOf(/^umask 077$/);
  const copyKey = lineOf(/^cp \/run\/lbconfig\/ssh_host_ed25519_key \/run\/lbconfig\/ssh_host_ed25519_key\.pub \/etc\/ssh\/ /);
  const sshd = lineOf(/\/opt\/ssh\/sshd /);
  const copyAuth = lineOf(/^cp \/run\/lbconfig\/authorized_keys \/root\/\.ssh\/ /);
  const umask022 = lineOf(/^umask 022$/);
  const chmod = lineOf(/^chmod 0644 \/etc\/ssh\/ssh_host_ed25519_key\.pub /);
  const umount = lineOf(/^umount \/run\/lbconfig$/);
  const ready = lineOf(new RegExp(`^echo ${readyMarker}`));
  assert.ok(mount < umask && umask < copyKey && copyKey < sshd && sshd < copyAuth && copyAuth < umask022 && umask022 < chmod);
  assert.ok(chmod < umount && umount < ready);
  assert.ok(lineOf(/^wait \$usr \|\| fail/) < sshd, 'sshd needs /usr for its dynamic loader');
});

test('binfmt lines are written verbatim (printf, not echo) after binfmt_misc is mounted', () => {
  assert.ok(lineOf(/mount -t binfmt_misc/) < lineOf(/binfmt_misc\/register/));
  assert.match(rc, /printf '%s\\n' "\$entry" > \/proc\/sys\/fs\/binfmt_misc\/register/);
});

test('sshd runs by absolute path with its config, -r only when asked', () => {
  assert.match(rc, /LD_LIBRARY_PATH=\/opt\/ssh\/lib \/opt\/ssh\/sshd -r -f \/etc\/ssh\/sshd_config /);
  assert.doesNotMatch(rcBuilder({ modules: noModules, cache: 'loose' }), /sshd -r/);
});

test('the ready marker is the last thing printed, after sshd listens; failures print the failed marker', () => {
  const ready = lineOf(new RegExp(`^echo ${readyMarker} > /dev/console$`));
  assert.ok(lineOf(/while \[ ! -s \/run\/sshd\.pid \]/) < ready);
  assert.ok(lineOf(/^t store$/) < ready && lineOf(/^t binfmt$/) < ready);
  assert.equal(lines.slice(ready + 1).join(''), '');
  assert.match(rc, new RegExp(`echo "${failedMarker}: \\$\\*" > /dev/console`));
  assert.match(rc, /^t\(\) \{ read -r up _ < \/proc\/uptime; echo "\[rc \$up\] \$\*"/m);
});

test('the disk is set up in the background only when the config share says it is attached', () => {
  const check = lineOf(/^if \[ -e \/run\/lbconfig\/disk \]; then$/);
  assert.ok(check > lineOf(new RegExp(`mount -t 9p .* ${shareTags.config} /run/lbconfig`)) && check < lineOf(/^umount \/run\/lbconfig$/));
  assert.ok(lineOf(/^ {4}load ext4$/) > check, 'ext4 loads inside the disk job');
  assert.ok(lineOf(/^ {2}disk=\$!$/) < lineOf(/\/opt\/ssh\/sshd /), 'the disk job runs while sshd starts');
  assert.ok(lineOf(/^ {2}wait \$disk \|\| exit 1$/) < lineOf(/ overlay \/nix\/store /), 'the overlay waits for the disk');
  assert.ok(lineOf(/^ {2}mount -t tmpfs .* \/nix\/\.rw-store$/) > check, 'tmpfs only without a disk');
});

test('the disk: mkfs only without the ext4 magic, resize2fs only when the device grew, state and builds on it', () => {
  assert.match(rc, /if \[ "\$\(hexdump -s 1080 -n 2 -e '2\/1 "%02x"' \/dev\/vda\)" != 53ef \]; then/);
  const mkfs = lineOf(/\/usr\/sbin\/mkfs\.ext4 .* \/dev\/vda /);
  const mount = lineOf(/mount -t ext4 -o noatime,discard \/dev\/vda \/nix\/\.rw-store /);
  const resize = lineOf(/\/usr\/sbin\/resize2fs \/dev\/vda /);
  assert.ok(lineOf(/while \[ ! -e \/usr\/sbin \]/) < mkfs, 'the host tools need /usr');
  assert.ok(mkfs < mount && mount < resize, 'resize2fs grows the mounted file system online');
  assert.ok(lineOf(/if \[ "\$known" != "\$size" \]; then/) < resize);
  assert.ok(lineOf(/echo \$size > \/nix\/\.rw-store\/\.sectors/) > resize);
  const overlay = lineOf(/ overlay \/nix\/store /);
  assert.ok(lineOf(/mount --bind \/nix\/\.rw-store\/var\/nix \/nix\/var\/nix/) > overlay);
  assert.ok(lineOf(/mount --bind \/nix\/\.rw-store\/tmp \/tmp/) > overlay);
  assert.match(rc, /find \/nix\/\.rw-store\/upper -maxdepth 1 -type c -exec rm -f \{\} \+/);
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
    'MaxStartups 200',
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

test('after an unclean stop, an empty Nix schema file on the disk means a fresh database', () => {
  assert.match(rc, /s=\/nix\/\.rw-store\/var\/nix\/db\/schema\n\s+if \[ -e \$s \] && \[ ! -s \$s \]; then .*rm -rf \$\{s%\/schema\}; fi/);
});

test('the guest collects garbage itself, only paths on its own disk, from the thresholds in the disk file', () => {
  assert.ok(lineOf(/^ {2}read -r _ gcmin gcmax < \/run\/lbconfig\/disk$/) < lineOf(/^umount \/run\/lbconfig$/), 'read before the share is unmounted');
  const start = lineOf(/^ {2}\/etc\/collect-garbage loop &$/);
  assert.equal(lines[start - 1], '  echo "$gcmin $gcmax" > /run/gc.thresholds');
  assert.ok(start > lineOf(/ overlay \/nix\/store /), 'it starts once the store is up');
  assert.ok(lineOf(/^if \[ -n "\$disk" \] && \[ -n "\$gcmax" \]; then$/) < start, 'only with a disk');
  const gc = collectorScript();
  assert.match(gc, /^ {2}rm -f \/nix\/\.rw-store\/\.reserve\n {2}\/usr\/bin\/nix-store --gc --print-dead > \/run\/gc\.dead\.\$\$/m);
  assert.match(gc, /\{ \[ -e "\$n" \] \|\| \[ -L "\$n" \]; \} && \[ ! -c "\$n" \] && \[ ! -e "\/nix\/\.ro-store\/\$n" \] && echo "\$p"/);
  assert.match(gc, /head -n 500 \/run\/gc\.mine\.\$\$ \| xargs \/usr\/bin\/nix-store --delete/);
  assert.doesNotMatch(gc, /nix-store --gc(?! --print-dead)/, 'never a plain --gc: it would delete (hide) host paths');
  // %d in busybox awk stops at 2^31: a disk with more than 2 GiB free read as -2147483648 and was collected.
  assert.match(gc, /awk 'NR == 2 \{ printf "%\.0f", \$4 \* 1024 \}'/);
  assert.match(gc, /^ {6}if \[ "\$f" -ge "\$gcmin" \]; then reserve; rest=10; continue; fi$/m);
  assert.match(gc, /^ {6}if \[ "\$g" -le "\$f" \]; then rest=\$\(\(rest \* 2\)\); \[ \$rest -gt 300 \] && rest=300; fi$/m);
  assert.match(gc, /^ {2}\[ "\$\(freebytes\)" -lt "\$gcmin" \] \|\| return 0$/m, 'a collection that another one made unneeded does nothing');
});

test('every remote build starts the guest\'s nix-daemon, which makes room first when the disk is short of it', () => {
  assert.match(sshdConfig(), /^SetEnv PATH=\/opt\/builder\/bin:.*:\/usr\/bin:/m);
  assert.ok(sessionPath.startsWith(`${guestPaths.sessionBinDir}:`));
  assert.equal(nixDaemonWrapper(), '#!/bb/sh\n/etc/collect-garbage if-short\nexec /usr/bin/nix-daemon "$@"\n');
  assert.match(collectorScript(), /^ {2}if-short\) collect ;;$/m);
});

test('the generated shell scripts parse', { skip: !existsSync('/bin/busybox') && 'no busybox here' }, () => {
  for (const [name, script] of Object.entries({ rc, init: initScript(), collector: collectorScript(), nixDaemon: nixDaemonWrapper() })) {
    const check = spawnSync('/bin/busybox', ['sh', '-n'], { input: script, encoding: 'utf8' });
    assert.equal(check.status, 0, `${name}: ${check.stderr}`);
  }
});

test('build users: a nixbld group of 32 users from uid 30001, none with a password or a shell', () => {
  const etc = etcFiles();
  const group = etc.group?.text.split('\n').find((line) => line.startsWith('nixbld:')) ?? '';
  const members = group.split(':')[3]?.split(',') ?? [];
  assert.equal(group.split(':')[2], String(buildUsers.gid));
  assert.equal(members.length, buildUsers.count);
  const users = (etc.passwd?.text ?? '').split('\n').filter((line) => line.startsWith('nixbld'));
  assert.deepEqual(users.map((line) => line.split(':')[0]), members);
  assert.deepEqual(users.map((line) => Number(line.split(':')[2])), members.map((_, i) => 30001 + i));
  for (const line of users) {
    assert.equal(line.split(':')[3], String(buildUsers.gid));
    assert.equal(line.split(':')[6], '/usr/sbin/nologin');
  }
  for (const user of members) assert.match(etc.shadow?.text ?? '', new RegExp(`^${user}:\\*:`, 'm'));
  assert.doesNotMatch(etc.hosts?.text ?? '', /10\.0\.2\.2/, 'no name for the host\'s loopback');
});

test('every user but root is kept off QEMU\'s host network (the host\'s loopback) but for DNS, before the guest says it is ready', () => {
  assert.deepEqual([...buildNetworkRules], [
    'rule add uidrange 1-4294967294 to 10.0.2.3/32 lookup main pref 100',
    'rule add uidrange 1-4294967294 to 10.0.2.0/24 prohibit pref 101',
  ]);
  const rules = lineOf(/\| \/usr\/sbin\/ip -batch - \|\| fail /);
  for (const rule of buildNetworkRules) assert.ok(lines[rules]?.includes(`'${rule}'`), rule);
  assert.ok(rules < lineOf(new RegExp(`^echo ${readyMarker}`)));
  assert.ok(rules > lineOf(/ hostusr \/usr/), 'iproute2 comes from /usr');
});

test('the Rosetta share is mounted at /run/rosetta, as the config share says, before binfmt registers its interpreter', () => {
  const copy = lineOf(/^cp \/run\/lbconfig\/rosetta \/run\/rosetta\.mount 2>\/dev\/null$/);
  assert.ok(copy < lineOf(/^umount \/run\/lbconfig$/), 'copied while the config share is mounted');
  const mount = lineOf(/mount -t "\$fstype" -o "\$options" rosetta \/run\/rosetta \|\| fail/);
  assert.ok(lineOf(/^if \[ -f \/run\/rosetta\.mount \]; then$/) < mount);
  assert.ok(mount < lineOf(/binfmt_misc\/register/), 'F opens the interpreter at registration: it must be there');
});
