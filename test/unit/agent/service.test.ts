import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../../src/errors.js';
import { systemdExecWord, systemdUnit } from '../../../src/agent/service/systemd-unit.js';
import { launchdPlist, xmlEscape } from '../../../src/agent/service/launchd-plist.js';
import { agentArgv, binPath, servicePlan, serviceEnvironment, type ServiceHost, type ServicePlan } from '../../../src/agent/service/plan.js';
import { forgetSteps, loadSteps, probeCommand, unloadSteps } from '../../../src/agent/service/commands.js';
import {
  installService,
  launchdState,
  runCommand,
  serviceStatus,
  uninstallService,
  type CommandResult,
  type ServiceDeps,
} from '../../../src/agent/service/manager.js';

const linuxUser: ServiceHost = { platform: 'linux', uid: 1000, env: { HOME: '/home/u' } };
const systemdRuns = existsSync('/run/systemd/system');
const notSystemd = 'systemd is not running on this machine (PID 1 is not systemd): loading cannot be tested here';

function lines(text: string, prefix: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(prefix));
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-service-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('ExecStart words: plain ones bare; spaces, quotes, backslashes quoted; % and $ doubled; a lone ; escaped', () => {
  const table: [string, string][] = [
    ['/usr/bin/node', '/usr/bin/node'],
    ['--name', '--name'],
    ['/opt/my tools/100%/bin/linux-builder.js', '"/opt/my tools/100%%/bin/linux-builder.js"'],
    ['$HOME', '"$$HOME"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['a\\b', '"a\\\\b"'],
    ["it's", '"it\'s"'],
    ['two\nlines', '"two\\nlines"'],
    [';', '\\;'],
    ['', '""'],
  ];
  for (const [arg, word] of table) assert.equal(systemdExecWord(arg), word, JSON.stringify(arg));
  const unit = systemdUnit({ name: 'dev', scope: 'user', execStart: ['/usr/bin/node', '/opt/my tools/100%/bin/linux-builder.js', '--name', 'dev', 'serve'] });
  assert.deepEqual(lines(unit, 'ExecStart='), ['ExecStart=/usr/bin/node "/opt/my tools/100%%/bin/linux-builder.js" --name dev serve']);
});

test('the unit: simple service restarted on failure, SIGTERM to the agent alone with 60 s to stop, WantedBy by scope', () => {
  for (const [scope, wantedBy] of [['user', 'default.target'], ['system', 'multi-user.target']] as const) {
    const unit = systemdUnit({ name: 'dev', scope, execStart: ['/bin/node', '/x/bin/linux-builder.js', '--name', 'dev', 'serve'], stateDir: '/s/dev' });
    const sections = unit.split('\n').filter((line) => line.startsWith('['));
    assert.deepEqual(sections, ['[Unit]', '[Service]', '[Install]']);
    for (const line of ['After=network.target', 'Type=simple', 'Restart=on-failure', 'RestartSec=2', 'KillSignal=SIGTERM', 'KillMode=mixed', 'TimeoutStopSec=60', 'WorkingDirectory=-/s/dev']) {
      assert.ok(unit.split('\n').includes(line), `${scope}: ${line}`);
    }
    assert.deepEqual(lines(unit, 'WantedBy='), [`WantedBy=${wantedBy}`]);
    assert.match(lines(unit, 'Description=')[0] ?? '', /dev/);
  }
});

test('Environment= lines only for the variables that are set, quoted, % doubled, $ kept', () => {
  const env = serviceEnvironment({ HOME: '/home/u', XDG_STATE_HOME: '/data/100% state', XDG_CACHE_HOME: '', PATH: '/bin', OTHER: 'x' });
  assert.deepEqual(env, { HOME: '/home/u', XDG_STATE_HOME: '/data/100% state', PATH: '/bin' });
  const unit = systemdUnit({ name: 'dev', scope: 'user', execStart: ['/bin/node'], env: { ...env, XDG_RUNTIME_DIR: '/run/$x "y"' } });
  assert.deepEqual(lines(unit, 'Environment='), [
    'Environment="HOME=/home/u"',
    'Environment="XDG_STATE_HOME=/data/100%% state"',
    'Environment="PATH=/bin"',
    'Environment="XDG_RUNTIME_DIR=/run/$x \\"y\\""',
  ]);
  assert.deepEqual(lines(systemdUnit({ name: 'dev', scope: 'user', execStart: ['/bin/node'], env: {} }), 'Environment='), []);
});

test('systemd itself reads ExecStart, WorkingDirectory and Environment back as written (systemd-analyze verify)', async (t) => {
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('systemd-analyze is not installed here');
  const dir = await tempDir(t);
  const file = join(dir, 'lb-verify.service');
  const unit = systemdUnit({
    name: 'verify', scope: 'system', stateDir: '/var/lib/a b%', env: { HOME: '/h o%me' },
    execStart: ['/usr/bin/printf', '%s|', 'a b', '100%', '$HOME'],
  });
  await writeFile(file, unit);
  // At debug level, verify dumps the parsed unit.
  const dump = spawnSync('systemd-analyze', ['verify', file], { env: { ...process.env, SYSTEMD_LOG_LEVEL: 'debug' }, encoding: 'utf8' });
  const text = `${dump.stdout}${dump.stderr}`;
  const commandLine = /Command Line: (.*)/.exec(text)?.[1];
  if (commandLine === undefined) return t.skip('this systemd-analyze does not dump the parsed unit');
  // systemd prints the stored argv; "$$" is turned into "$" only when it runs the command.
  assert.equal(commandLine, '/usr/bin/printf "%s|" "a b" 100% "\\$\\$HOME"');
  assert.match(text, /WorkingDirectory: \/var\/lib\/a b%\n/);
  assert.match(text, /Environment: HOME=\/h o%me\n/);
});

async function parseXml(t: { after: (fn: () => Promise<void>) => void }, xml: string): Promise<string> {
  const file = join(await tempDir(t), 'agent.plist');
  await writeFile(file, xml);
  // minidom parses strictly and does not fetch the DTD; print the tree back in a canonical form.
  return execFileSync('python3', ['-c', [
    'import sys, xml.dom.minidom',
    'doc = xml.dom.minidom.parse(sys.argv[1])',
    'def show(node, depth):',
    '    for child in node.childNodes:',
    '        if child.nodeType == child.ELEMENT_NODE:',
    '            text = "".join(c.data for c in child.childNodes if c.nodeType == c.TEXT_NODE).strip()',
    '            print("  " * depth + child.tagName + (" " + repr(text) if text else ""))',
    '            show(child, depth + 1)',
    'show(doc.documentElement, 0)',
  ].join('\n'), file], { encoding: 'utf8' });
}

test('the plist parses as XML: Label, ProgramArguments, RunAtLoad, KeepAlive restarts only on failure, logs, environment', async (t) => {
  const xml = launchdPlist({
    name: 'dev', scope: 'user', logPath: '/Users/u/Library/Application Support/linux-builder/dev/service.log',
    programArguments: ['/usr/local/bin/node', '/opt/a&b <c>/bin/linux-builder.js', '--name', 'dev', 'serve'],
    env: { HOME: '/Users/u', PATH: '/usr/bin:/bin' },
  });
  const tree = await parseXml(t, xml);
  const log = "'/Users/u/Library/Application Support/linux-builder/dev/service.log'";
  assert.equal(tree, ['dict', ...[
    "key 'Label'", "string 'org.linux-builder.dev'",
    "key 'ProgramArguments'", 'array',
    "  string '/usr/local/bin/node'", "  string '/opt/a&b <c>/bin/linux-builder.js'", "  string '--name'", "  string 'dev'", "  string 'serve'",
    "key 'RunAtLoad'", 'true',
    "key 'KeepAlive'", 'dict', "  key 'SuccessfulExit'", '  false',
    "key 'ExitTimeOut'", "integer '60'",
    "key 'StandardOutPath'", `string ${log}`,
    "key 'StandardErrorPath'", `string ${log}`,
    "key 'EnvironmentVariables'", 'dict', "  key 'HOME'", "  string '/Users/u'", "  key 'PATH'", "  string '/usr/bin:/bin'",
  ].map((line) => `  ${line}`), ''].join('\n'));
  assert.ok(xml.includes('<string>/opt/a&amp;b &lt;c&gt;/bin/linux-builder.js</string>'));
});

test('XML escaping covers markup and quotes and refuses what XML cannot carry', () => {
  assert.equal(xmlEscape(`a&b<c>"d"'e'`), 'a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;');
  assert.throws(() => xmlEscape('bell\x07'), (e: unknown) => e instanceof UserError && e.exitCode === 2);
});

test('the agent runs as: this node, this package\'s bin/linux-builder.js, --name N serve', () => {
  assert.deepEqual(agentArgv('dev'), [process.execPath, binPath(), '--name', 'dev', 'serve']);
  assert.ok(existsSync(binPath()), binPath());
  assert.ok(binPath().endsWith(join('bin', 'linux-builder.js')));
});

test('where the file goes, by manager and scope; --unit-dir elsewhere is not loaded', () => {
  const table: [ServiceHost, { scope?: 'user' | 'system'; unitDir?: string }, string, string][] = [
    [linuxUser, {}, 'user', '/home/u/.config/systemd/user/linux-builder-dev.service'],
    [{ ...linuxUser, env: { HOME: '/home/u', XDG_CONFIG_HOME: '/cfg' } }, {}, 'user', '/cfg/systemd/user/linux-builder-dev.service'],
    [{ ...linuxUser, uid: 0 }, {}, 'system', '/etc/systemd/system/linux-builder-dev.service'],
    [linuxUser, { scope: 'system' }, 'system', '/etc/systemd/system/linux-builder-dev.service'],
    [{ platform: 'darwin', uid: 501, env: { HOME: '/Users/u' } }, {}, 'user', '/Users/u/Library/LaunchAgents/org.linux-builder.dev.plist'],
    [{ platform: 'darwin', uid: 0, env: { HOME: '/var/root' } }, {}, 'system', '/Library/LaunchDaemons/org.linux-builder.dev.plist'],
  ];
  for (const [host, options, scope, file] of table) {
    const plan = servicePlan('dev', options, host);
    assert.equal(plan.scope, scope, file);
    assert.equal(plan.file, file);
    assert.equal(plan.customDir, false, file);
  }
  assert.equal(servicePlan('dev', { unitDir: '/pkg/out' }, linuxUser).customDir, true);
  assert.equal(servicePlan('dev', { unitDir: '/home/u/.config/systemd/user/' }, linuxUser).customDir, false);
  assert.throws(() => servicePlan('../x', {}, linuxUser), (e: unknown) => e instanceof UserError && e.exitCode === 2);
});

test('a LaunchDaemon (root on macOS) keeps its state and log system-wide and carries TMPDIR; a LaunchAgent logs under the user\'s Application Support', () => {
  const daemon = servicePlan('dev', {}, { platform: 'darwin', uid: 0, env: { HOME: '/var/root', PATH: '/usr/bin:/bin' } });
  assert.equal(daemon.stateDir, '/var/db/linux-builder/dev');
  assert.equal(daemon.logPath, '/var/db/linux-builder/dev/service.log');
  const agent = servicePlan('dev', {}, { platform: 'darwin', uid: 501, env: { HOME: '/Users/u', TMPDIR: '/var/folders/xy/T/' } });
  assert.equal(agent.logPath, '/Users/u/Library/Application Support/linux-builder/dev/service.log');
  assert.equal(agent.env.TMPDIR, '/var/folders/xy/T/', 'the agent finds the sockets the CLI made');
});

test('systemd command lines: --user only in user scope; restart a running agent only when its unit changed', () => {
  const user = servicePlan('dev', {}, linuxUser);
  const system = servicePlan('dev', { scope: 'system' }, linuxUser);
  const argvs = (steps: { argv: readonly string[] }[]) => steps.map((s) => s.argv.join(' '));
  assert.deepEqual(argvs(loadSteps(user, { changed: true, loaded: false })), [
    'systemctl --user daemon-reload',
    'systemctl --user try-restart linux-builder-dev.service',
    'systemctl --user enable --now linux-builder-dev.service',
  ]);
  assert.deepEqual(argvs(loadSteps(system, { changed: false, loaded: true })), ['systemctl daemon-reload', 'systemctl enable --now linux-builder-dev.service']);
  assert.deepEqual(argvs(unloadSteps(system, { loaded: true })), ['systemctl disable --now linux-builder-dev.service']);
  assert.deepEqual(argvs(forgetSteps(user)), ['systemctl --user daemon-reload', 'systemctl --user reset-failed linux-builder-dev.service']);
  assert.deepEqual(probeCommand(user), ['systemctl', '--user', 'is-active', 'linux-builder-dev.service']);
});

test('install and uninstall with --unit-dir write and remove exactly one 0644 file, and load nothing', async (t) => {
  const dir = await tempDir(t);
  const plan = servicePlan('unitdir', { unitDir: join(dir, 'units') }, linuxUser);
  const noManager: ServiceDeps = {
    run: () => assert.fail('nothing may be run for --unit-dir'),
    availability: () => assert.fail('the manager is not asked for --unit-dir'),
  };
  assert.deepEqual(await installService(plan, noManager), { kind: 'written', file: join(dir, 'units', 'linux-builder-unitdir.service') });
  assert.deepEqual(await readdir(join(dir, 'units')), ['linux-builder-unitdir.service']);
  assert.equal((await stat(plan.file)).mode & 0o777, 0o644);
  assert.match(await readFile(plan.file, 'utf8'), /^ExecStart=.*--name unitdir serve$/m);
  // Twice is once.
  await installService(plan, noManager);
  assert.deepEqual(await readdir(join(dir, 'units')), ['linux-builder-unitdir.service']);
  assert.equal((await serviceStatus(plan, noManager)).installed, true);

  const removed = await uninstallService(plan, noManager);
  assert.equal(removed.kind, 'removed');
  assert.deepEqual(await readdir(join(dir, 'units')), []);
  assert.deepEqual(await uninstallService(plan, noManager), { kind: 'not-installed', file: plan.file });
});

test('without systemd, install keeps the unit but fails (exit 1) saying why and how to run the agent by hand', async (t) => {
  if (systemdRuns) return t.skip('systemd runs here: the loading test covers install');
  const dir = await tempDir(t);
  const plan: ServicePlan = { ...servicePlan('nosystemd', { unitDir: dir }, linuxUser), customDir: false };
  await assert.rejects(installService(plan), (e: unknown) =>
    e instanceof UserError && e.exitCode === 1 && /not running here/.test(e.message) && /linux-builder --name nosystemd serve/.test(e.hint ?? ''));
  assert.deepEqual(await readdir(dir), ['linux-builder-nosystemd.service']);
  assert.deepEqual(await serviceStatus(plan), { file: plan.file, installed: true, state: undefined, why: 'systemd is not running here (PID 1 is not systemd)' });
  assert.deepEqual(await uninstallService(plan), { kind: 'removed', file: plan.file, notStopped: 'systemd is not running here (PID 1 is not systemd)' });
  assert.deepEqual(await readdir(dir), []);
});

test('systemd loads, starts, stops and forgets the unit', async (t) => {
  if (!systemdRuns) return t.skip(notSystemd);
  const scope = process.getuid?.() === 0 ? 'system' : 'user';
  if (scope === 'user' && (await runCommand(['systemctl', '--user', 'is-system-running'])).stdout.trim() === '') {
    return t.skip('systemd is PID 1, but this user has no systemd user manager to talk to');
  }
  // A harmless stand-in for the agent whose arguments still need quoting.
  const name = `lbtest${process.pid}`;
  const plan: ServicePlan = { ...servicePlan(name, { scope }), argv: [process.execPath, '-e', 'setInterval(() => {}, 1 << 30) // 100% "$HOME"'] };
  t.after(() => uninstallService(plan).then(() => undefined));
  assert.deepEqual(await installService(plan), { kind: 'loaded', file: plan.file, changed: true });
  assert.equal((await serviceStatus(plan)).state, 'active');
  assert.deepEqual(await uninstallService(plan), { kind: 'removed', file: plan.file });
  assert.equal(existsSync(plan.file), false);
  assert.notEqual((await serviceStatus(plan)).state, 'active');
});

function fakeLaunchctl(answers: Record<string, CommandResult>): ServiceDeps & { ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    availability: () => Promise.resolve({ running: true }),
    run: (argv) => {
      ran.push(argv.join(' '));
      return Promise.resolve(answers[argv.slice(0, 2).join(' ')] ?? { code: 0, stdout: '', stderr: '' });
    },
  };
}

test('launchd command lines: bootstrap into gui/<uid> or system, bootout on uninstall (fake launchctl)', async (t) => {
  const dir = await tempDir(t);
  const host: ServiceHost = { platform: 'darwin', uid: 501, env: { HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state') } };
  const plan: ServicePlan = { ...servicePlan('mac', { unitDir: join(dir, 'agents') }, host), customDir: false };
  const notLoaded = { code: 113, stdout: '', stderr: 'Could not find service "org.linux-builder.mac" in domain for user gui: 501' };

  const fresh = fakeLaunchctl({ 'launchctl print': notLoaded });
  await installService(plan, fresh);
  assert.deepEqual(fresh.ran, ['launchctl print gui/501/org.linux-builder.mac', `launchctl bootstrap gui/501 ${plan.file}`]);
  assert.ok(existsSync(plan.logPath.replace(/service\.log$/, '')), 'the log directory exists for launchd to open the log in');

  const loaded = fakeLaunchctl({ 'launchctl print': { code: 0, stdout: 'org.linux-builder.mac = {\n\tstate = running\n}', stderr: '' } });
  await installService(plan, loaded);
  assert.deepEqual(loaded.ran, ['launchctl print gui/501/org.linux-builder.mac'], 'unchanged and loaded: left alone');
  assert.deepEqual(await serviceStatus(plan, loaded), { file: plan.file, installed: true, state: 'running' });
  await uninstallService(plan, loaded);
  assert.deepEqual(loaded.ran.slice(2), ['launchctl print gui/501/org.linux-builder.mac', 'launchctl bootout gui/501/org.linux-builder.mac']);
  assert.equal(existsSync(plan.file), false);

  const daemon: ServicePlan = { ...plan, scope: 'system' };
  assert.deepEqual(loadSteps(daemon, { changed: true, loaded: true }).map((s) => s.argv.join(' ')), [
    'launchctl bootout system/org.linux-builder.mac',
    `launchctl bootstrap system ${plan.file}`,
  ]);
  assert.equal(launchdState('\tstate = not running\n'), 'not running');
});

test('a failing launchctl bootstrap keeps the plist and fails with the reason (fake launchctl)', async (t) => {
  const dir = await tempDir(t);
  const host: ServiceHost = { platform: 'darwin', uid: 501, env: { HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state') } };
  const plan: ServicePlan = { ...servicePlan('mac', { unitDir: dir }, host), customDir: false };
  const broken = fakeLaunchctl({
    'launchctl print': { code: 113, stdout: '', stderr: '' },
    'launchctl bootstrap': { code: 5, stdout: '', stderr: 'Bootstrap failed: 5: Input/output error' },
  });
  await assert.rejects(installService(plan, broken), (e: unknown) =>
    e instanceof UserError && e.exitCode === 1 && /Input\/output error/.test(e.message) && /serve/.test(e.hint ?? ''));
  assert.equal(existsSync(plan.file), true);
});
