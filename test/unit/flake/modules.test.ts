/**
 * The NixOS and nix-darwin modules, evaluated by the real module system (the vendored nixpkgs
 * lib; for nix-darwin, all of its vendored modules), checked against what the CLI's own code
 * writes for `service install` and `nix-config`, and run: the service's command line starts the
 * real CLI, whose files ssh reads through the module's ssh config.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchdPlistDict } from '../../../src/agent/service/launchd-plist.js';
import { servicePlan } from '../../../src/agent/service/plan.js';
import { systemdExecWord, systemdUnitName, systemdUnitSections } from '../../../src/agent/service/systemd-unit.js';
import { defaultSettings } from '../../../src/config/settings.js';
import { sshHostOf } from '../../../src/instance/identity.js';
import { loopbackPort } from '../../../src/ssh/endpoint.js';
import { instancePaths, roots } from '../../../src/instance/paths.js';
import { instanceMachinesLine } from '../../../src/nix/registration.js';
import { defaultSystems } from '../../../src/platform/systems.js';
import { cliPath } from '../../support/cli.js';
import { evalError, evalModule, noModuleEval } from '../../support/nix-eval.js';

interface DarwinResult {
  packagePath: string;
  nixPath: string;
  daemon: Record<string, unknown> | null;
  plistFiles: string[];
  plistText: string | null;
  machines: string | null;
  nixConf: string | null;
  sshConfig: string | null;
  preActivation: string;
  systemPackages: string[];
  failedAssertions: string[];
  warnings: string[];
}

interface NixosResult {
  packagePath: string;
  nixPath: string;
  services: string[];
  service: { description: string; wantedBy: string[]; after: string[]; path: string[]; serviceConfig: Record<string, string | number> } | null;
  sshExtraConfig: string;
  buildMachines: Record<string, unknown>[];
  distributedBuilds: boolean;
  settings: Record<string, unknown>;
  systemPackages: string[];
  failedAssertions: string[];
  warnings: string[];
}

const skip = noModuleEval;

function enabled(options: Record<string, unknown> = {}, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { services: { 'linux-builder': { enable: true, ...options } }, ...more };
}

/** The instance's files as the CLI names them when run as root without XDG variables. */
function rootPaths(name: string, platform: 'linux' | 'darwin') {
  return instancePaths(name, roots({ HOME: platform === 'darwin' ? '/var/root' : '/root' }, platform, 0));
}

function serveArgv(packagePath: string, name: string, rest: string[]): string[] {
  return [`${packagePath}/bin/linux-builder`, '--name', name, 'serve', ...rest];
}

const defaultServeFlags = (systems: string[]): string[] => [
  '--cores', 'auto', '--memory', 'auto', '--disk-size', '40G', '--no-ephemeral', '--systems', systems.join(','), '--idle-timeout', '3h',
];

/** What /bin/sh makes of the command nix-darwin wraps as /bin/sh -c "/bin/wait4path /nix/store && exec …". */
function launchedArgv(programArguments: unknown): string[] {
  assert.ok(Array.isArray(programArguments));
  const [shell, flag, script = ''] = programArguments as string[];
  assert.deepEqual([shell, flag], ['/bin/sh', '-c']);
  const prefix = '/bin/wait4path /nix/store && exec ';
  assert.ok(script.startsWith(prefix), script);
  const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${script.slice(prefix.length)}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

/** The CLI's machines line for the same instance, host key aside (the modules pin it through ssh). */
function cliMachinesFields(name: string, platform: 'linux' | 'darwin', systems: string[], cores: number): string[] {
  const paths = rootPaths(name, platform);
  const identity = { settings: defaultSettings(), sshHost: sshHostOf(paths, loopbackPort(22)), hostPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test', newKeys: false };
  return instanceMachinesLine(paths, identity, { systems, cores }).split(' ').slice(0, 7);
}

test('nix-darwin: the launchd daemon is the plist service install writes, run through wait4path with every setting, and nix-darwin\'s own modules accept it', { skip }, () => {
  const r = evalModule<DarwinResult>('darwin', 'aarch64-darwin', enabled());
  assert.deepEqual(r.failedAssertions, []);
  assert.deepEqual(r.warnings, []);
  const plan = servicePlan('default', {}, { platform: 'darwin', uid: 0, env: { HOME: '/var/root' } });
  assert.ok(r.plistFiles.includes(plan.file.split('/').pop() ?? ''), `${plan.file} among ${r.plistFiles.join(', ')}`);
  assert.ok(r.daemon);
  const { ProgramArguments, EnvironmentVariables, ...daemon } = r.daemon;
  const { ProgramArguments: _argv, EnvironmentVariables: _env, ...cli } = launchdPlistDict({ name: 'default', programArguments: [], logPath: plan.logPath, scope: 'system', env: {} });
  assert.deepEqual(daemon, cli);
  assert.equal(plan.logPath, '/var/db/linux-builder/default/service.log');
  assert.deepEqual(launchedArgv(ProgramArguments), serveArgv(r.packagePath, 'default', defaultServeFlags(defaultSystems('aarch64'))));
  const path = (EnvironmentVariables as { PATH: string }).PATH.split(':');
  assert.deepEqual(path, [`${r.nixPath}/bin`, '/usr/bin', '/bin', '/usr/sbin', '/sbin']);
  // nix-darwin's own rendering, as launchd reads it
  assert.match(r.plistText ?? '', /<key>Label<\/key>\s*<string>org\.linux-builder\.default<\/string>/);
  assert.match(r.plistText ?? '', /<key>KeepAlive<\/key>\s*<dict>\s*<key>SuccessfulExit<\/key>\s*<false\/>/);
  assert.deepEqual(r.systemPackages, ['linux-builder-0.1.0']);
});

test('nix-darwin: /etc/nix/machines has the CLI\'s machines line (host key pinned by ssh instead), the ssh config Includes the block the CLI writes, the log\'s directory exists before launchd opens it', { skip }, () => {
  const r = evalModule<DarwinResult>('darwin', 'aarch64-darwin', enabled());
  const paths = rootPaths('default', 'darwin');
  assert.equal(r.machines, `${[...cliMachinesFields('default', 'darwin', defaultSystems('aarch64'), 8), '-'].join(' ')}\n`);
  assert.match(r.nixConf ?? '', /^builders-use-substitutes = true$/m);
  assert.equal(r.sshConfig, `Host linux-builder-default\n  Include ${paths.nixSshConfig}\n`);
  assert.match(r.preActivation, new RegExp(`^install -d -m 0700 /var/db/linux-builder ${paths.stateDir}$`, 'm'));
  // nix-darwin's activation deletes its own builder's directory: never ours
  for (const [, removed] of r.preActivation.matchAll(/rm -rf (\S+)/g)) {
    assert.ok(!`${paths.stateDir}/`.startsWith(`${removed}/`), `activation runs rm -rf ${removed}, which holds ${paths.stateDir}`);
  }
});

test('nix-darwin: settings reach the command line (shell-quoted), the label, the machines line; the guest\'s own system comes first', { skip }, () => {
  const r = evalModule<DarwinResult>('darwin', 'aarch64-darwin', enabled({
    name: 'big', cores: 4, memory: '6G', diskSize: '100G', ephemeral: true, systems: ['x86_64-linux', 'aarch64-linux'],
    idleTimeout: '20m', port: 31122, extraArgs: ['--accel', 'hvf', 'it\'s "quoted" $HOME'],
  }));
  assert.equal(r.daemon?.Label, 'org.linux-builder.big');
  assert.deepEqual(launchedArgv(r.daemon?.ProgramArguments), serveArgv(r.packagePath, 'big', [
    '--cores', '4', '--memory', '6G', '--disk-size', '100G', '--ephemeral', '--systems', 'aarch64-linux,x86_64-linux', '--idle-timeout', '20m',
    '--listen', '127.0.0.1:31122', '--accel', 'hvf', 'it\'s "quoted" $HOME',
  ]));
  assert.equal(r.machines, `${[...cliMachinesFields('big', 'darwin', ['aarch64-linux', 'x86_64-linux'], 4), '-'].join(' ')}\n`);
  assert.ok(r.plistFiles.includes('org.linux-builder.big.plist'));
});

test('the default systems are the CLI\'s for the host\'s architecture', { skip }, () => {
  for (const [platform, system, arch] of [['darwin', 'x86_64-darwin', 'x86_64'], ['nixos', 'aarch64-linux', 'aarch64'], ['nixos', 'x86_64-linux', 'x86_64']] as const) {
    const r = platform === 'darwin' ? evalModule<DarwinResult>(platform, system, enabled()) : undefined;
    const n = platform === 'nixos' ? evalModule<NixosResult>(platform, system, enabled()) : undefined;
    const systems = r ? (r.machines ?? '').split(' ')[1] : (n?.buildMachines[0]?.systems as string[]).join(',');
    assert.equal(systems, defaultSystems(arch).join(','), system);
  }
});

test('nix-darwin with nix.enable = false: the service runs, nothing is registered with Nix, a warning says how', { skip }, () => {
  const r = evalModule<DarwinResult>('darwin', 'aarch64-darwin', enabled({}, { nix: { enable: false } }));
  assert.equal(r.machines, null);
  assert.ok(r.daemon);
  assert.deepEqual((r.daemon.EnvironmentVariables as { PATH: string }).PATH.split(':')[0], '/nix/var/nix/profiles/default/bin');
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0] ?? '', /sudo linux-builder --name default nix-config --install/);
});

test('disabled, the modules set nothing', { skip }, () => {
  const d = evalModule<DarwinResult>('darwin', 'aarch64-darwin', { services: { 'linux-builder': { enable: false } } });
  assert.equal(d.daemon, null);
  assert.ok(!d.plistFiles.some((f) => f.startsWith('org.linux-builder.')));
  assert.equal(d.sshConfig, null);
  assert.equal(d.machines, null);
  assert.doesNotMatch(d.preActivation, /linux-builder\/default/);
  const n = evalModule<NixosResult>('nixos', 'x86_64-linux', {});
  assert.deepEqual([n.services, n.buildMachines, n.distributedBuilds, n.sshExtraConfig, n.systemPackages], [[], [], false, '', []]);
});

test('NixOS: the systemd service has the unit service install writes, ExecStart escaped the same way', { skip }, () => {
  const extraArgs = ['--accel', 'tcg', 'two words', '100%', '$HOME', 'say "hi"', 'a\\b', ';', 'tab\there'];
  const r = evalModule<NixosResult>('nixos', 'x86_64-linux', enabled({ extraArgs }));
  assert.deepEqual(r.failedAssertions, []);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.services, [systemdUnitName('default').replace(/\.service$/, '')]);
  assert.ok(r.service);
  const argv = serveArgv(r.packagePath, 'default', [...defaultServeFlags(defaultSystems('x86_64')), ...extraArgs]);
  const cli = systemdUnitSections({ name: 'default', execStart: argv, scope: 'system', stateDir: rootPaths('default', 'linux').stateDir });
  assert.deepEqual(
    Object.entries(r.service.serviceConfig).map(([key, value]) => [key, String(value)]).sort(),
    cli.Service.map(([key, value]) => [key, value]).sort(),
  );
  assert.equal(r.service.serviceConfig.ExecStart, argv.map(systemdExecWord).join(' '));
  assert.deepEqual([['Description', r.service.description], ['After', r.service.after.join(' ')]], cli.Unit);
  assert.deepEqual([['WantedBy', r.service.wantedBy.join(' ')]], cli.Install);
  assert.deepEqual(r.service.path, [r.nixPath]);
  assert.deepEqual(r.systemPackages, ['linux-builder-0.1.0']);
});

test('NixOS: nix.buildMachines is the CLI\'s machines line (host key pinned by ssh), distributed builds on, the ssh config Includes the CLI\'s block', { skip }, () => {
  const r = evalModule<NixosResult>('nixos', 'x86_64-linux', enabled({ cores: 2, systems: ['aarch64-linux', 'x86_64-linux'] }));
  assert.equal(r.buildMachines.length, 1);
  const m = r.buildMachines[0] as { protocol: string; sshUser: string; hostName: string; systems: string[]; sshKey: string; maxJobs: number; speedFactor: number; supportedFeatures: string[]; mandatoryFeatures: string[]; publicHostKey: string | null };
  // Rendered as NixOS and nix-darwin render nix.buildMachines into /etc/nix/machines.
  const rendered = [`${m.protocol}://${m.sshUser}@${m.hostName}`, m.systems.join(','), m.sshKey, String(m.maxJobs), String(m.speedFactor), m.supportedFeatures.join(','), m.mandatoryFeatures.length > 0 ? m.mandatoryFeatures.join(',') : '-'];
  assert.deepEqual(rendered, cliMachinesFields('default', 'linux', ['x86_64-linux', 'aarch64-linux'], 2));
  assert.equal(m.publicHostKey, null);
  assert.equal(r.distributedBuilds, true);
  assert.deepEqual(r.settings, { 'builders-use-substitutes': true });
  assert.equal(r.sshExtraConfig, `Host linux-builder-default\n  Include ${rootPaths('default', 'linux').nixSshConfig}\n`);
});

test('bad option values fail the evaluation, naming the option', { skip }, () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ name: 'two words' }, /services\.linux-builder\.name/],
    [{ cores: 0 }, /services\.linux-builder\.cores/],
    [{ systems: [] }, /services\.linux-builder\.systems/],
    [{ systems: ['aarch64-darwin'] }, /services\.linux-builder\.systems/],
    [{ port: 70000 }, /services\.linux-builder\.port/],
    [{ bogus: true }, /services\.linux-builder\.bogus/],
  ];
  for (const [options, message] of cases) {
    assert.match(evalError(() => evalModule('nixos', 'x86_64-linux', enabled(options))), message, JSON.stringify(options));
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts argv (the CLI's serve) and resolves once it says it listens; the caller stops it. */
function startServe(argv: string[], env: NodeJS.ProcessEnv): Promise<{ stop: () => Promise<number | null>; output: () => string }> {
  const child = spawn(process.execPath, [cliPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (/listening on 127\.0\.0\.1:\d+/.test(output)) {
        resolve({
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
          output: () => output,
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${output}`)));
  });
}

test('the module\'s command line runs the real CLI, which writes the machines line and ssh block; ssh resolves the alias through the module\'s Include', { skip }, async (t) => {
  const port = await freePort();
  const r = evalModule<NixosResult>('nixos', 'x86_64-linux', enabled({ name: 'modtest', cores: 1, memory: '512M', diskSize: '2G', port, idleTimeout: '20m' }));
  const exec = r.service?.serviceConfig.ExecStart;
  assert.ok(typeof exec === 'string');
  const argv = exec.split(' ');
  assert.equal(argv[0], `${r.packagePath}/bin/linux-builder`);
  const dir = await mkdtemp(join(tmpdir(), 'lb-module-'));
  const runtime = await mkdtemp('/tmp/lbm-');
  t.after(() => Promise.all([rm(dir, { recursive: true, force: true }), rm(runtime, { recursive: true, force: true })]));
  const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), XDG_CACHE_HOME: join(dir, 'cache'), XDG_RUNTIME_DIR: runtime };
  const serve = await startServe(argv.slice(1), env);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await serve.stop();
  });

  const paths = instancePaths('modtest', roots(env, 'linux'));
  const settings = JSON.parse(await readFile(paths.config, 'utf8')) as Record<string, unknown>;
  assert.deepEqual(
    [settings.cores, settings.memoryMiB, settings.diskSizeMiB, settings.agentPort, settings.idleTimeoutMs, settings.systems, settings.ephemeral],
    [1, 512, 2048, port, 20 * 60_000, defaultSystems('x86_64'), false],
  );

  // The machines line the CLI wrote is the module's entry, plus the pinned host key.
  const installedState = rootPaths('modtest', 'linux').stateDir;
  const line = (await readFile(paths.machines, 'utf8')).trim().split(' ');
  const m = r.buildMachines[0] as { hostName: string; sshUser: string; systems: string[]; sshKey: string; maxJobs: number };
  assert.deepEqual(line.slice(0, 4), [`ssh-ng://${m.sshUser}@${m.hostName}`, m.systems.join(','), m.sshKey.replace(installedState, paths.stateDir), String(m.maxJobs)]);
  const hostKey = await readFile(join(paths.guestShare, 'ssh_host_ed25519_key.pub'), 'utf8');
  assert.equal(Buffer.from(line[7] ?? '', 'base64').toString(), `${hostKey.trim()}\n`);

  // ssh as the nix-daemon runs it: the system config, another Host block first.
  const sshConfig = join(dir, 'ssh_config');
  const fragment = r.sshExtraConfig.replace(installedState, paths.stateDir);
  await writeFile(sshConfig, `Host elsewhere\n  User nobody\n  Port 2222\n\n${fragment}\nHost *\n  Port 22\n`);
  const resolved = new Map(
    execFileSync('ssh', ['-G', '-F', sshConfig, 'linux-builder-modtest'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)] as const),
  );
  assert.equal(resolved.get('hostname'), '127.0.0.1');
  assert.equal(resolved.get('port'), String(port));
  assert.equal(resolved.get('user'), 'root');
  assert.equal(resolved.get('hostkeyalias'), 'linux-builder-modtest');
  assert.equal(resolved.get('identityfile'), paths.clientKey);
  assert.equal(resolved.get('userknownhostsfile'), paths.knownHosts);
  assert.equal(resolved.get('stricthostkeychecking'), 'true');
  assert.equal(await readFile(paths.knownHosts, 'utf8'), `linux-builder-modtest ${hostKey.trim().split(' ').slice(0, 2).join(' ')}\n`);

  stopped = true;
  assert.equal(await serve.stop(), 0, serve.output());
});
