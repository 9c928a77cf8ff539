import { test } from 'node:test';
import assert from 'node:assert/strict';
import { machinesLine } from '../../../src/nix/machines.js';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseRoute, configFiles, install, machinesFileBody, nixConfBody, type Registration } from '../../../src/nix/registration.js';
import { builderEntries } from '../../../src/nix/host-nix.js';
import { instancePaths } from '../../../src/instance/paths.js';

const hostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN2Ygp58HfgRVrkDk9s8YPXXpRJ43IOYOWODodQKLuHd linux-builder-default\n';

test('the machines line: ssh-ng to the alias, systems, key, jobs, speed, features, pinned host key', () => {
  const line = machinesLine({
    alias: 'linux-builder-default',
    user: 'root',
    systems: ['x86_64-linux', 'i686-linux', 'aarch64-linux'],
    identityFile: '/state/default/id_ed25519',
    maxJobs: 2,
    speedFactor: 1,
    supportedFeatures: ['benchmark', 'big-parallel'],
    mandatoryFeatures: [],
    hostPublicKey: hostKey,
  });
  const fields = line.split(' ');
  assert.deepEqual(fields.slice(0, 7), [
    'ssh-ng://root@linux-builder-default',
    'x86_64-linux,i686-linux,aarch64-linux',
    '/state/default/id_ed25519',
    '2',
    '1',
    'benchmark,big-parallel',
    '-',
  ]);
  assert.equal(Buffer.from(fields[7] ?? '', 'base64').toString(), hostKey, 'base64 of the .pub line');
  assert.equal(fields.length, 8);
});

test('a key path with whitespace cannot be written into the machines format', () => {
  assert.throws(() =>
    machinesLine({
      alias: 'a', user: 'root', systems: ['x86_64-linux'], identityFile: '/my keys/id', maxJobs: 1, speedFactor: 1,
      supportedFeatures: [], mandatoryFeatures: [], hostPublicKey: hostKey,
    }),
  );
});

test('builders keeps what the host had and adds this instance once', () => {
  const paths = instancePaths('default', { state: '/s', cache: '/c', runtime: '/r' });
  assert.equal(nixConfBody(paths, '@/etc/nix/machines'), 'builders = @/etc/nix/machines;@/s/default/machines\nbuilders-use-substitutes = true\n');
  assert.equal(nixConfBody(paths, ''), 'builders = @/s/default/machines\nbuilders-use-substitutes = true\n');
  // A re-install sees its own entry in the effective value: it is not doubled.
  assert.equal(nixConfBody(paths, '@/etc/nix/machines;@/s/default/machines'), nixConfBody(paths, '@/etc/nix/machines'));
  assert.deepEqual(builderEntries('ssh://a x86_64-linux\n@/f; ssh://b'), ['ssh://a x86_64-linux', '@/f', 'ssh://b']);
});

test('config files by scope: NIX_USER_CONF_FILES, XDG_CONFIG_HOME, NIX_CONF_DIR, overrides', () => {
  assert.equal(configFiles('user', {}, { NIX_USER_CONF_FILES: '/a/nix.conf:/b/nix.conf' }).nixConf, '/a/nix.conf');
  assert.equal(configFiles('user', {}, { XDG_CONFIG_HOME: '/x' }).nixConf, '/x/nix/nix.conf');
  assert.equal(configFiles('user', {}, { HOME: '/home/u' }).nixConf, '/home/u/.config/nix/nix.conf');
  assert.deepEqual(configFiles('system', {}, {}), { nixConf: '/etc/nix/nix.conf', sshConfig: '/etc/ssh/ssh_config', machines: '/etc/nix/machines' });
  assert.equal(configFiles('system', {}, { NIX_CONF_DIR: '/opt/nix' }).nixConf, '/opt/nix/nix.conf');
  assert.equal(configFiles('system', {}, { NIX_CONF_DIR: '/opt/nix' }).machines, '/opt/nix/machines');
  assert.deepEqual(configFiles('user', { nixConf: '/n', sshConfig: '/s', machines: '/m' }, {}), { nixConf: '/n', sshConfig: '/s', machines: '/m' });
});

test("system scope: the machines file Nix's builders name (and a nix-daemon reads at every build) takes the builder; else nix.conf", () => {
  const paths = instancePaths('default', { state: '/s', cache: '/c', runtime: '/r' });
  const system = configFiles('system', {}, {});
  const table: [Parameters<typeof chooseRoute>, string][] = [
    [['system', system, '@/etc/nix/machines'], 'machines-file'],
    [['system', system, 'ssh://other x86_64-linux;@/etc/nix/machines'], 'machines-file'],
    // A re-install over one that wrote builders into nix.conf.
    [['system', system, '@/etc/nix/machines;@/s/default/machines'], 'machines-file'],
    [['system', system, 'ssh://other x86_64-linux'], 'nix-conf'],
    [['system', system, ''], 'nix-conf'],
    [['user', configFiles('user', {}, { HOME: '/home/u' }), '@/etc/nix/machines'], 'nix-conf'],
    [['system', configFiles('system', { nixConf: '/tmp/elsewhere/nix.conf' }, {}), '@/etc/nix/machines'], 'nix-conf'],
  ];
  for (const [args, want] of table) assert.equal(chooseRoute(...args), want, JSON.stringify(args[2]));
  assert.equal(nixConfBody(paths, '@/etc/nix/machines', 'machines-file'), 'builders-use-substitutes = true\n', 'builders is left alone');
  assert.equal(machinesFileBody(paths), '@/s/default/machines\n');
});

test('macOS system scope: the ssh_config block goes into a file of its own in /etc/ssh/ssh_config.d, which macOS includes first', () => {
  assert.deepEqual(configFiles('system', {}, {}, 'darwin'), { nixConf: '/etc/nix/nix.conf', sshConfig: '/etc/ssh/ssh_config.d/linux-builder.conf', machines: '/etc/nix/machines' });
  assert.equal(configFiles('system', {}, {}, 'linux').sshConfig, '/etc/ssh/ssh_config');
  assert.equal(configFiles('system', { sshConfig: '/x' }, {}, 'darwin').sshConfig, '/x');
});

test('a config file linked into the Nix store (nix-darwin, NixOS) is not replaced, and no other file is written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-managed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A store path of its own (the same one each run): a fresh store holds none yet.
  mkdirSync(join(dir, 'system'));
  writeFileSync(join(dir, 'system', 'nix.conf'), 'builders =\n');
  const storePath = execFileSync('nix-store', ['--add', join(dir, 'system', 'nix.conf')], { encoding: 'utf8' }).trim();
  const paths = instancePaths('default', { state: join(dir, 'state'), cache: join(dir, 'cache'), runtime: join(dir, 'run') });
  const files = { nixConf: join(dir, 'nix.conf'), sshConfig: join(dir, 'ssh_config'), machines: join(dir, 'machines') };
  symlinkSync(storePath, files.nixConf);
  const reg: Registration = { scope: 'system', files, route: 'nix-conf', machinesLine: 'x', sshBlock: 'Host linux-builder-default\n', nixConf: 'builders = @/x\n' };
  await assert.rejects(install(paths, reg), (error: Error & { hint?: string }) => {
    assert.match(error.message, /nix\.conf is a link into the Nix store .*your system configuration \(nix-darwin, NixOS or home-manager\) writes it/);
    assert.match(error.hint ?? '', /nix\.buildMachines .*--nix-conf/);
    return true;
  });
  assert.equal(existsSync(files.sshConfig), false, 'the ssh config was not written either');
  assert.ok(lstatSync(files.nixConf).isSymbolicLink(), 'the link is left alone');
});
