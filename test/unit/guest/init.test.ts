import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { collectorScript } from '../../../src/guest/collector.js';
import { nixDaemonSpares, nixDaemonWrapper } from '../../../src/guest/daemon.js';
import { buildUsers, dhcpScript, etcFiles, fstab, guestPaths, initScript, inittab, rcBuilder, sessionPath, sshdConfig, type GuestTools, type InitOptions } from '../../../src/guest/init.js';
import { failedMarker, guestLaunchArgs, readyMarker, shareTags } from '../../../src/guest/layout.js';
import { renderTemplate, scriptTemplate, shellAssignments } from '../../../src/guest/scripts.js';
import { hostUserland } from '../../../src/guest/userland.js';
import { powerButtonScript, shutdownScript } from '../../../src/guest/power.js';

/** The host's and Debian's /usr: mkfs.ext4 in /usr/sbin, nix-store in /usr/bin… */
const tools: GuestTools = hostUserland().tools;
const modules = {
  boot: [['virtio_ring'], ['virtio_mmio']],
  shares: { '9p': [['9pnet'], ['9pnet_virtio', '9p']], virtiofs: [['fuse'], ['virtiofs']] },
  pci: [['virtio_pci']],
  net: [['net_failover'], ['virtio_net']],
  late: [['overlay', 'binfmt_misc']],
  disk: [['virtio_blk', 'jbd2', 'mbcache'], ['ext4']],
  vsock: [['vsock'], ['vmw_vsock_virtio_transport_common'], ['vmw_vsock_virtio_transport']],
  power: [['evdev', 'gpio_keys']],
};
const noModules = { boot: [], shares: { '9p': [], virtiofs: [] }, pci: [], net: [], late: [], disk: [], vsock: [], power: [] };
const options = (overrides: Partial<InitOptions> = {}): InitOptions => ({ modules, cache: 'loose', tools, sshdNoReexec: true, ...overrides });

/**
 * The script as the shell sees it once its settings are assigned: every $name of the settings
 * block replaced by its value, so a line reads as the guest runs it.
 */
function expand(script: string): string {
  const values = new Map<string, string>();
  const settings = script.slice(0, script.indexOf('\nexport PATH='));
  for (const match of settings.matchAll(/^([a-z_][a-z0-9_]*)=(\S*)$/gm)) values.set(match[1] ?? '', (match[2] ?? '').replace(/^'(.*)'$/, '$1'));
  const names = [...values.keys()].sort((a, b) => b.length - a.length);
  return script.replace(new RegExp(`\\$(${names.join('|')})(?![a-z0-9_])`, 'g'), (_, name: string) => values.get(name) ?? '');
}

const rc = expand(rcBuilder(options()));
const lines = rc.split('\n');
const lineOf = (pattern: RegExp) => {
  const index = lines.findIndex((line) => pattern.test(line));
  assert.ok(index >= 0, `no line matches ${pattern}`);
  return index;
};

/** busybox sh -n: the text parses as the guest's shell would read it. */
function parses(name: string, script: string): void {
  const check = spawnSync('busybox', ['sh', '-n'], { input: script, encoding: 'utf8' });
  assert.equal(check.error, undefined, `busybox: ${String(check.error)}`);
  assert.equal(check.status, 0, `${name}: ${check.stderr}`);
}

test('every rendered guest script parses (busybox sh -n): with and without modules, PCI, each transport\'s modules, sshd -r', () => {
  const scripts: Record<string, string> = {
    rc: rcBuilder(options()),
    'rc without modules': rcBuilder(options({ modules: noModules })),
    'rc with only 9p': rcBuilder(options({ modules: { ...modules, shares: { '9p': modules.shares['9p'], virtiofs: [] }, pci: [] }, sshdNoReexec: false })),
    'rc with cache=none': rcBuilder(options({ cache: 'none' })),
    init: initScript(),
    collector: collectorScript(tools),
    'nix-daemon': nixDaemonWrapper(tools),
    'nix-daemon-spares': nixDaemonSpares(tools),
    udhcpc: dhcpScript(),
    shutdown: shutdownScript(),
    'power-button': powerButtonScript(),
  };
  for (const [name, script] of Object.entries(scripts)) {
    parses(name, script);
    assert.doesNotMatch(script, /@[A-Z][A-Z0-9_]*@/, `${name}: a placeholder left`);
    assert.ok(script.startsWith(`#!${guestPaths.busyboxDir}/sh\n`), name);
  }
});

test('every script file in src/guest/scripts renders and parses', () => {
  const files = readdirSync(new URL('../../../src/guest/scripts/', import.meta.url)).filter((f) => f.endsWith('.sh'));
  assert.deepEqual(files.sort(), ['collect-garbage.sh', 'init.sh', 'nix-daemon-spares.sh', 'nix-daemon.sh', 'power-button.sh', 'rc.builder.sh', 'shutdown.sh', 'udhcpc.sh']);
});

test('templates: a placeholder alone on its line takes indented lines (none: ":"), inline ones take strings; missing and unused values are errors', () => {
  const template = 'if x; then\n  @BODY@\nfi\necho @WORD@\n';
  assert.equal(renderTemplate(template, { BODY: ['a', 'b'], WORD: 'w' }), 'if x; then\n  a\n  b\nfi\necho w\n');
  assert.equal(renderTemplate(template, { BODY: [], WORD: 'w' }), 'if x; then\n  :\nfi\necho w\n');
  assert.throws(() => renderTemplate(template, { BODY: [] }), /no value for @WORD@/);
  assert.throws(() => renderTemplate(template, { BODY: [], WORD: 'w', EXTRA: 'x' }), /no @EXTRA@ in the template/);
  assert.throws(() => renderTemplate(template, { BODY: [], WORD: ['a'] }), /@WORD@ takes lines/);
  assert.deepEqual(shellAssignments({ a: '/plain/path', b: '', c: "it's" }), ['a=/plain/path', "b=''", `c='it'\\''s'`]);
  assert.throws(() => shellAssignments({ 'not-a-name': 'x' }), /not a shell variable name/);
  assert.match(scriptTemplate('rc.builder'), /^@SETTINGS@$/m);
});

test('/init moves a bind mount of the initramfs over / (Nix\'s sandbox cannot pivot_root away from rootfs), then execs busybox init, which runs rc.builder as sysinit', () => {
  const commands = initScript().split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  assert.deepEqual(commands, ['/bb/mount --bind / /mnt && cd /mnt && /bb/mount --move . / && exec /bb/chroot . /bb/init', 'exec /bb/init']);
  assert.match(inittab(), /^::sysinit:\/etc\/rc\.builder$/m);
});

test('modules load level by level, a level in parallel; the share transport\'s before the mounts, the rest while sshd starts', () => {
  assert.match(rc, /^load\(\) \{ pids=; for m; do \{ insmod \/modules\/\$m\.ko .*\} & pids="\$pids \$!"; done; wait \$pids; \}$/m);
  const loads = lines.filter((line) => /^\s*load /.test(line)).map((line) => line.trim());
  assert.deepEqual(loads, [
    'load virtio_ring',
    'load virtio_mmio',
    'load fuse',
    'load virtiofs',
    'load 9pnet',
    'load 9pnet_virtio 9p',
    'load virtio_pci',
    'load net_failover',
    'load virtio_net',
    'load virtio_blk jbd2 mbcache',
    'load ext4',
    'load vsock',
    'load vmw_vsock_virtio_transport_common',
    'load vmw_vsock_virtio_transport',
    'load overlay binfmt_misc',
    'load evdev gpio_keys',
  ]);
  const sshd = lineOf(/\/opt\/ssh\/sshd /);
  assert.ok(lineOf(/^ {4}load 9pnet_virtio 9p$/) < lineOf(/^share hostusr \/usr /));
  assert.ok(lineOf(/^load overlay binfmt_misc$/) > sshd);
  assert.doesNotMatch(rcBuilder(options({ modules: noModules })), /^\s*load [a-z]/m);
});

test('the transport\'s modules load by what the kernel command line says: virtiofs, else 9p', () => {
  const at = lineOf(/^case \$shares in$/);
  assert.deepEqual(lines.slice(at, at + 9).map((l) => l.trim()), ['case $shares in', 'virtiofs)', 'load fuse', 'load virtiofs', ';;', '*)', 'load 9pnet', 'load 9pnet_virtio 9p', ';;']);
  assert.match(rc, /^\s+lb\.shares=\*\) shares=\$\{arg#\*=\} ;;$/m);
  assert.ok(lineOf(/^read -r cmdline < \/proc\/cmdline$/) > lineOf(/^mount -a /), '/proc is mounted first');
  assert.ok(lineOf(/^shares=9p address= gateway= dns= hostnet= sshvsock=$/) < lineOf(/^read -r cmdline/), '9p unless told otherwise');
});

test('shares mount read-only over the plan\'s transport: virtiofs by tag, 9p with the cache mode for /usr and the store', () => {
  const share = rc.slice(rc.indexOf('share() {'), rc.indexOf('\n}\n', rc.indexOf('share() {')));
  assert.match(share, /mount -t virtiofs -o ro "\$1" "\$2"/);
  assert.match(share, /mount -t 9p -o "trans=virtio,version=9p2000\.L,\$\{3:\+\$3,\}ro" "\$1" "\$2"/);
  assert.match(rc, /^share hostusr \/usr msize=512000,cache=loose &$/m);
  assert.match(rc, /^share nixstore \/nix\/\.ro-store msize=512000,cache=loose \|\| fail /m);
  assert.match(rc, /mkdir -p \/run\/lbconfig && share lbconfig \/run\/lbconfig \|\| fail/);
  assert.match(expand(rcBuilder(options({ cache: 'none' }))), /^share hostusr \/usr msize=512000,cache=none &$/m);
  assert.match(rc, /lowerdir=\/nix\/\.ro-store,upperdir=\/nix\/\.rw-store\/upper,workdir=\/nix\/\.rw-store\/work overlay \/nix\/store/);
  assert.equal(shareTags.usr, 'hostusr');
});

test('virtio_pci loads only when the guest has PCI devices; microvm has none', () => {
  const check = lineOf(/^set -- \/sys\/bus\/pci\/devices\/\*$/);
  assert.equal(lines[check + 1], 'if [ -e "$1" ]; then');
  assert.equal(lines[check + 2], '  load virtio_pci');
  assert.ok(check > lineOf(/^load virtio_mmio$/));
  assert.match(rcBuilder(options({ modules: { ...modules, pci: [] } })), /^if \[ -e "\$1" \]; then\n {2}:\nfi$/m);
});

test('the network comes up in the background from the kernel command line: a fixed address, or a DHCP lease; ready waits for it', () => {
  const job = lineOf(/^\{$/);
  assert.deepEqual(lines.slice(job + 1, job + 3), ['  load net_failover', '  load virtio_net']);
  const end = lineOf(/^} &$/);
  const body = lines.slice(job, end).join('\n');
  assert.match(body, /^ {4}ip addr add \$address dev eth0$/m);
  assert.match(body, /^ {4}ip route add default via \$gateway$/m);
  assert.match(body, /^ {4}udhcpc -i eth0 -f -q -n -t 60 -T 1 -s \/etc\/udhcpc\.script /m);
  assert.match(rc, /^\[ -n "\$dns" \] && echo "nameserver \$dns" > \/etc\/resolv\.conf$/m);
  assert.ok(lineOf(/^wait \$network$/) < lineOf(new RegExp(`^echo ${readyMarker}`)));
  assert.match(dhcpScript(), /ip addr add \$ip\/\$\{mask:-24\} dev \$interface/);
});

test('the lb.* kernel arguments say the transport and the network, as rc.builder reads them', () => {
  assert.deepEqual(guestLaunchArgs({ shares: 'virtiofs', network: { kind: 'static', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', hostNet: '10.0.2.0/24' } }), [
    'lb.shares=virtiofs', 'lb.address=10.0.2.15/24', 'lb.gateway=10.0.2.2', 'lb.dns=10.0.2.3', 'lb.hostnet=10.0.2.0/24',
  ]);
  for (const arg of guestLaunchArgs({ shares: '9p', network: { kind: 'dhcp', dns: '192.168.64.1', hostNet: '192.168.64.1/32' } })) {
    const name = arg.slice(0, arg.indexOf('='));
    assert.match(rc, new RegExp(`^\\s+${name.replace('.', '\\.')}=\\*\\) [a-z]+=\\$\\{arg#\\*=\\} ;;$`, 'm'), `rc.builder reads ${name}`);
  }
});

test('the API file systems are mounted by one mount -a from /etc/fstab', () => {
  assert.ok(lineOf(/^mount -t devtmpfs devtmpfs \/dev/) < lineOf(/^mount -a /));
  assert.match(fstab(), /^devpts \/dev\/pts devpts gid=5,mode=620,ptmxmode=666 0 0$/m);
  for (const mount of ['/proc proc', '/sys sysfs', '/dev/shm tmpfs', '/run tmpfs', '/tmp tmpfs']) {
    assert.match(fstab(), new RegExp(`^\\S+ ${mount} `, 'm'));
  }
  assert.equal(etcFiles().fstab?.text, fstab());
});

test('keys are copied from the config share with umask 077: the host key before sshd starts, the rest while it starts', () => {
  const mount = lineOf(/share lbconfig \/run\/lbconfig/);
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
  assert.match(rc, /done < \/run\/binfmt$/m);
});

test('sshd runs by absolute path with its config, -r only when asked', () => {
  assert.match(rc, /LD_LIBRARY_PATH=\/opt\/ssh\/lib \/opt\/ssh\/sshd -r -f \/etc\/ssh\/sshd_config -E \/run\/sshd\.log /);
  assert.match(expand(rcBuilder(options({ sshdNoReexec: false }))), /\/opt\/ssh\/sshd {2}-f /);
});

test('the ready marker is the last thing printed, after sshd listens; failures print the failed marker', () => {
  const ready = lineOf(new RegExp(`^echo ${readyMarker} > /dev/console$`));
  assert.ok(lineOf(/while \[ ! -s \/run\/sshd\.pid \]/) < ready);
  assert.ok(lineOf(/^t store$/) < ready && lineOf(/^t binfmt$/) < ready);
  // after it, only the spare nix-daemons start, printing nothing (their script sends its output away)
  assert.deepEqual(lines.slice(ready + 1).filter((line) => line !== '' && !line.startsWith('#')), ['/etc/nix-daemon-spares start 2 &']);
  assert.match(nixDaemonSpares(tools), /^exec < \/dev\/null > \/dev\/null 2>&1$/m);
  assert.match(rc, new RegExp(`echo "${failedMarker}: \\$\\*" > /dev/console`));
  assert.match(rc, /^t\(\) \{ read -r up _ < \/proc\/uptime; echo "\[rc \$up\] \$\*"/m);
});

test('the disk is set up in the background only when the config share says it is attached, on the device it names', () => {
  const check = lineOf(/^if \[ -e \/run\/lbconfig\/disk \]; then$/);
  assert.equal(lines[check + 1], '  read -r disk_device gcmin gcmax < /run/lbconfig/disk');
  assert.equal(lines[check + 2], '  dev=/dev/$disk_device');
  assert.ok(check > lineOf(/share lbconfig \/run\/lbconfig/) && check < lineOf(/^umount \/run\/lbconfig$/));
  assert.ok(lineOf(/^ {4}load ext4$/) > check, 'ext4 loads inside the disk job');
  assert.ok(lineOf(/^ {2}disk=\$!$/) < lineOf(/\/opt\/ssh\/sshd /), 'the disk job runs while sshd starts');
  assert.ok(lineOf(/^ {2}wait \$disk \|\| exit 1$/) < lineOf(/ overlay \/nix\/store /), 'the overlay waits for the disk');
  assert.ok(lineOf(/^ {2}mount -t tmpfs .* \/nix\/\.rw-store$/) > check, 'tmpfs only without a disk');
  assert.doesNotMatch(rc, /vda/, 'the device is the config share\'s word');
});

test('the disk: mkfs only without the ext4 magic, resize2fs only when the device grew, with the userland\'s tools; state and builds on it', () => {
  assert.match(rc, /if \[ "\$\(hexdump -s 1080 -n 2 -e '2\/1 "%02x"' \$dev\)" != 53ef \]; then/);
  const mkfs = lineOf(/\/usr\/sbin\/mkfs\.ext4 -q -F .* \$dev /);
  const mount = lineOf(/mount -t ext4 -o noatime,discard \$dev \/nix\/\.rw-store /);
  const resize = lineOf(/\/usr\/sbin\/resize2fs \$dev /);
  assert.ok(lineOf(/while \[ ! -x \/usr\/sbin\/mkfs\.ext4 \]/) < mkfs, 'the userland\'s tools need /usr');
  assert.ok(mkfs < mount && mount < resize, 'resize2fs grows the mounted file system online');
  assert.ok(lineOf(/if \[ "\$known" != "\$size" \]; then/) < resize);
  assert.ok(lineOf(/echo \$size > \/nix\/\.rw-store\/\.sectors/) > resize);
  assert.match(rc, /read -r size < \/sys\/block\/\$disk_device\/size/);
  const overlay = lineOf(/ overlay \/nix\/store /);
  assert.ok(lineOf(/mount --bind \/nix\/\.rw-store\/var\/nix \/nix\/var\/nix/) > overlay);
  assert.ok(lineOf(/mount --bind \/nix\/\.rw-store\/tmp \/tmp/) > overlay);
  assert.match(rc, /find \/nix\/\.rw-store\/upper -maxdepth 1 -type c -exec rm -f \{\} \+/);
  const elsewhere = expand(rcBuilder(options({ tools: { ...tools, mkfsExt4: '/nix/store/x-e2fsprogs/bin/mkfs.ext4' } })));
  assert.match(elsewhere, /^ {6}\/nix\/store\/x-e2fsprogs\/bin\/mkfs\.ext4 -q -F /m);
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
  const everything = [rc, sshdConfig(), inittab(), initScript(), collectorScript(tools), ...Object.values(etcFiles()).map((f) => f.text)].join('\n');
  assert.doesNotMatch(everything, /PRIVATE KEY|ssh-ed25519 AAAA|ssh-rsa AAAA/);
});

test('/etc has root and the sshd privilege-separation user; shadow is 0600; resolv.conf is the network\'s, written at boot', () => {
  const etc = etcFiles();
  assert.match(etc.passwd?.text ?? '', /^root:x:0:0:root:\/root:\/bin\/sh$/m);
  assert.match(etc.passwd?.text ?? '', /^sshd:x:/m);
  assert.equal(etc.shadow?.mode, 0o600);
  assert.equal(etc['resolv.conf'], undefined);
});

test('after an unclean stop, an empty Nix schema file on the disk means a fresh database, and no roots of host paths it held', () => {
  assert.match(rc, /s=\/nix\/\.rw-store\/var\/nix\/db\/schema\n\s+if \[ -e \$s \] && \[ ! -s \$s \]; then .*rm -rf \$\{s%\/schema\} \/nix\/\.rw-store\$\{host_roots#\/nix\}; fi/);
  assert.match(rc, /^host_roots=\/nix\/var\/nix\/gcroots\/linux-builder-host$/m);
});

test('the guest collects garbage itself, only paths on its own disk, from the thresholds in the disk file', () => {
  const start = lineOf(/^ {2}\/etc\/collect-garbage loop &$/);
  assert.equal(lines[start - 1], '  echo "$gcmin $gcmax" > /run/gc.thresholds');
  assert.ok(start > lineOf(/ overlay \/nix\/store /), 'it starts once the store is up');
  assert.ok(lineOf(/^if \[ -n "\$disk" \] && \[ -n "\$gcmax" \]; then$/) < start, 'only with a disk');
  const gc = expand(collectorScript(tools));
  assert.match(gc, /^ {2}rm -f \/nix\/\.rw-store\/\.reserve\n {2}\/usr\/bin\/nix-store --gc --print-dead > \/run\/gc\.dead\.\$\$/m);
  assert.match(gc, /\{ \[ -e "\$n" \] \|\| \[ -L "\$n" \]; \} && \[ ! -c "\$n" \] && \[ ! -e "\/nix\/\.ro-store\/\$n" \] && echo "\$p"/);
  assert.match(gc, /head -n 500 \/run\/gc\.mine\.\$\$ \| xargs \/usr\/bin\/nix-store --delete/);
  assert.doesNotMatch(gc, /nix-store --gc(?! --print-dead)/, 'never a plain --gc: it would delete (hide) host paths');
  // %d in busybox awk stops at 2^31: a disk with more than 2 GiB free read as -2147483648 and was collected.
  assert.match(gc, /awk 'NR == 2 \{ printf "%\.0f", \$4 \* 1024 \}'/);
  assert.match(gc, /^ {6}if \[ "\$f" -ge "\$gcmin" \]; then reserve; rest=10; continue; fi$/m);
  assert.match(gc, /^ {6}if \[ "\$g" -le "\$f" \]; then rest=\$\(\(rest \* 2\)\); \[ \$rest -gt 300 \] && rest=300; fi$/m);
  assert.match(gc, /^ {2}\[ "\$\(freebytes\)" -lt "\$gcmin" \] \|\| return 0$/m, 'a collection that another one made unneeded does nothing');
  assert.match(gc, /\/usr\/bin\/fallocate -l 67108864 \/nix\/\.rw-store\/\.reserve/);
});

test('every remote build starts the guest\'s nix-daemon, which makes room first when the disk is short of it', () => {
  assert.match(sshdConfig(), /^SetEnv PATH=\/opt\/builder\/bin:.*:\/usr\/bin:/m);
  assert.ok(sessionPath.startsWith(`${guestPaths.sessionBinDir}:`));
  const wrapper = nixDaemonWrapper(tools).split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  // room first, then a spare daemon for --stdio, and the real daemon when there is none
  assert.ok(wrapper.indexOf('/etc/collect-garbage if-short') < wrapper.indexOf('if [ "$*" = --stdio ]; then'));
  assert.equal(wrapper.at(-1), 'exec /usr/bin/nix-daemon "$@"');
  assert.match(collectorScript(tools), /^ {2}if-short\) collect ;;$/m);
});

test('spare nix-daemons wait on FIFOs only root can open, a connection takes one by an atomic mv, and rc starts them', () => {
  const spares = nixDaemonSpares(tools);
  assert.match(spares, /mkdir -p -m 0700 \$spares_dir\/ready \$spare && mkfifo -m 0600 \$spare\/in \$spare\/out \$spare\/err/);
  assert.match(spares, /^spares_dir=\/run\/nix-daemon-spares$/m);
  // never the first Nix to open a missing database: two that create it at once race
  assert.ok(spares.indexOf('until [ -s $nix_db/schema ]') < spares.indexOf('spawn $n'));
  assert.match(spares, /^nix_db=\/nix\/var\/nix\/db$/m);
  assert.match(spares, /--stdio < \$spare\/in > \$spare\/out 2> \$spare\/err &$/m);
  const wrapper = nixDaemonWrapper(tools);
  assert.match(wrapper, /\$busybox_dir\/mv "\$ready" \$spares_dir\/taken\.\$\$ 2>\/dev\/null \|\| continue/);
  // the successor starts once the connection's relays are done: it holds none of its FIFOs
  assert.ok(wrapper.lastIndexOf('setsid $spares start 1 < /dev/null > /dev/null 2>&1 &') > wrapper.indexOf('wait $from_host $from_daemon_err'));
  assert.match(rcBuilder(options()), /^\$spares start \$spare_daemons &$/m);
  // spares load at the lowest priority (every daemon it starts inherits it); the one a connection
  // takes is back at the usual priority before the host's side reaches it
  assert.ok(spares.indexOf('renice 19 -p $$') < spares.indexOf('spawn() {'));
  const renice = wrapper.indexOf('$busybox_dir/renice 0 -p "$pid"');
  assert.ok(renice > wrapper.indexOf('read -r pid keeper') && renice < wrapper.indexOf('exec 4> $spare/in'));
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

test('every user but root is kept off where the host\'s loopback answers, but for DNS, before the guest says it is ready; no rules, no ready', () => {
  const rules = lineOf(/^printf '%s\\n' "rule add uidrange 1-4294967294 to \$dns\/32 lookup main pref 100" "rule add uidrange 1-4294967294 to \$hostnet prohibit pref 101" \\$/);
  assert.equal(lines[rules + 1], '  | /usr/sbin/ip -batch - || fail "could not keep builds off the host\'s loopback (ip rule)"');
  assert.ok(lineOf(/^\[ -n "\$hostnet" \] && \[ -n "\$dns" \] \|\| fail /) < rules, 'without them the guest gives up');
  assert.ok(rules < lineOf(new RegExp(`^echo ${readyMarker}`)));
  assert.ok(rules > lineOf(/^share hostusr \/usr/), 'iproute2 comes from /usr');
});

test('rc.builder reads the lb.* arguments as the kernel passes them (a real shell runs its parsing)', { skip: !existsSync('/bin/sh') && 'no sh' }, () => {
  const script = rcBuilder(options());
  const parsing = script.slice(script.indexOf('shares=9p address='), script.indexOf('set +f') + 'set +f'.length);
  const args = guestLaunchArgs({ shares: 'virtiofs', network: { kind: 'static', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', hostNet: '10.0.2.0/24' } });
  const program = parsing.replace('read -r cmdline < /proc/cmdline', `cmdline='console=ttyS0 panic=-1 quiet ${args.join(' ')} x=*'`) + '\necho "$shares|$address|$gateway|$dns|$hostnet"\n';
  const run = spawnSync('busybox', ['sh', '-c', program], { encoding: 'utf8', cwd: '/' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'virtiofs|10.0.2.15/24|10.0.2.2|10.0.2.3|10.0.2.0/24');
});

test('the Rosetta share is mounted at /run/rosetta over the launch\'s transport when the config share says so, before binfmt registers its interpreter', () => {
  const flag = lineOf(/^\[ -e \/run\/lbconfig\/rosetta \] && rosetta=1$/);
  assert.ok(flag < lineOf(/^umount \/run\/lbconfig$/), 'read while the config share is mounted');
  const mount = lineOf(/mkdir -p \/run\/rosetta && share rosetta \/run\/rosetta \|\| fail/);
  assert.ok(mount > lineOf(/^t binfmt$/) && mount < lineOf(/binfmt_misc\/register/), 'F opens the interpreter at registration: it must be there');
});

test('SSH over vsock: with lb.sshvsock the vsock modules load and socat relays the port to sshd on the loopback, after /usr is mounted', () => {
  assert.match(rc, /^\s+lb\.sshvsock=\*\) sshvsock=\$\{arg#\*=\} ;;$/m);
  const check = lineOf(/^if \[ -n "\$sshvsock" \]; then$/);
  assert.ok(lineOf(/^ {2}load vsock$/) > check);
  const relay = lineOf(/^ {2}\/usr\/bin\/socat -lm VSOCK-LISTEN:\$sshvsock,reuseaddr,fork TCP4:127\.0\.0\.1:22 /);
  assert.ok(relay > lineOf(/^wait \$usr \|\| fail/), 'socat comes from /usr');
  assert.ok(relay < lineOf(new RegExp(`^echo ${readyMarker}`)));
  assert.deepEqual(
    guestLaunchArgs({ shares: 'virtiofs', network: { kind: 'dhcp', dns: '192.168.64.1', hostNet: '192.168.64.0/24' }, sshVsockPort: 22 }).at(-1),
    'lb.sshvsock=22',
  );
});
