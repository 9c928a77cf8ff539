import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { NotReady, waitUntilReady } from '../../../src/ssh/readiness.js';
import { generateKeyPair } from '../../../src/ssh/keys.js';
import { knownHostsLine, sshConfigBlock } from '../../../src/ssh/config.js';
import { loopbackPort } from '../../../src/ssh/endpoint.js';
import { sshExecArgv, type SshTarget } from '../../../src/ssh/client.js';

const client = generateKeyPair('client');
const pinned = generateKeyPair('pinned');

// The system's ssh runs the probe's command, with an ssh_config as an instance has: the client's
// key, and the pinned host key in its known_hosts. ssh2's server stands in for the guest's sshd.
const dir = mkdtempSync(join(tmpdir(), 'lb-ready-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'id_ed25519'), client.privateKey, { mode: 0o600 });
writeFileSync(join(dir, 'known_hosts'), knownHostsLine('lb-test', pinned.publicKey));

function targetAt(port: number): SshTarget {
  const endpoint = loopbackPort(port);
  const configFile = join(dir, `ssh_config-${port}`);
  writeFileSync(configFile, sshConfigBlock({ alias: 'lb-test', endpoint, user: 'root', identityFile: join(dir, 'id_ed25519'), knownHostsFile: join(dir, 'known_hosts') }));
  return { endpoint, configFile, alias: 'lb-test' };
}

function listen(server: Server | ssh2.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

const never = new Promise<never>(() => {});

test('a port that accepts and closes (slirp before sshd is up) fails at the banner rung', async () => {
  const server = createServer((socket) => socket.destroy());
  const port = await listen(server);
  const rungs: string[] = [];
  await assert.rejects(
    waitUntilReady({
      target: targetAt(port),
      deadline: Date.now() + 800,
      exited: never,
      onRung: (rung) => rungs.push(rung),
      pollMs: 20,
    }),
    (error: unknown) => error instanceof NotReady && error.rung === 'ssh-banner',
  );
  assert.deepEqual(rungs, ['process', 'port']);
  server.close();
});

test('a VM process that exits fails at the process rung at once', async () => {
  const started = Date.now();
  await assert.rejects(
    waitUntilReady({
      target: targetAt(1),
      deadline: Date.now() + 30_000,
      exited: Promise.resolve({ code: 1, signal: null }),
    }),
    (error: unknown) => error instanceof NotReady && error.rung === 'process' && /exited/.test(error.message),
  );
  assert.ok(Date.now() - started < 10_000);
});

test('an sshd with another host key fails with a host key mismatch, and no command is sent', async () => {
  const impostor = generateKeyPair('impostor');
  let commandsReceived = 0;
  let authAttempts = 0;
  const server = new ssh2.Server({ hostKeys: [impostor.privateKey] }, (connection) => {
    connection.on('authentication', (ctx) => {
      authAttempts++;
      ctx.accept();
    });
    connection.on('session', (accept) => {
      accept().on('exec', () => commandsReceived++);
    });
    connection.on('error', () => {});
  });
  const port = await listen(server);
  await assert.rejects(
    waitUntilReady({
      target: targetAt(port),
      deadline: Date.now() + 10_000,
      exited: never,
    }),
    (error: unknown) => error instanceof NotReady && error.rung === 'ssh-exec' && /host key mismatch/.test(error.message),
  );
  assert.equal(authAttempts, 0);
  assert.equal(commandsReceived, 0);
  server.close();
});

test('an sshd with the pinned key that runs the command makes the ladder succeed', async () => {
  const server = new ssh2.Server({ hostKeys: [pinned.privateKey] }, (connection) => {
    connection.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    connection.on('session', (accept) => {
      accept().on('exec', (acceptExec) => {
        const stream = acceptExec();
        stream.exit(0);
        stream.end();
      });
    });
    connection.on('error', () => {});
  });
  const port = await listen(server);
  const rungs: string[] = [];
  await waitUntilReady({
    target: targetAt(port),
    deadline: Date.now() + 10_000,
    exited: never,
    onRung: (rung) => rungs.push(rung),
  });
  assert.deepEqual(rungs, ['process', 'port', 'ssh-banner', 'ssh-exec']);
  server.close();
});

test('a guest that reports it gave up fails the ladder at once, with its reason', async () => {
  const server = createServer((socket) => socket.destroy());
  const port = await listen(server);
  const started = Date.now();
  await assert.rejects(
    waitUntilReady({
      target: targetAt(port),
      deadline: Date.now() + 30_000,
      exited: never,
      guestFailure: async () => 'sshd did not start, see /run/sshd.log',
    }),
    (error: unknown) => error instanceof NotReady && error.rung === 'ssh-banner' && /the guest reported: sshd did not start/.test(error.message),
  );
  assert.ok(Date.now() - started < 5000);
  server.close();
});

test('no command runs before the guest says its setup is done', async () => {
  let execs = 0;
  let readyAsked = 0;
  const server = new ssh2.Server({ hostKeys: [pinned.privateKey] }, (connection) => {
    connection.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    connection.on('session', (accept) => {
      accept().on('exec', (acceptExec) => {
        execs++;
        const stream = acceptExec();
        stream.exit(0);
        stream.end();
      });
    });
    connection.on('error', () => {});
  });
  const port = await listen(server);
  await waitUntilReady({
    target: targetAt(port),
    deadline: Date.now() + 10_000,
    exited: never,
    pollMs: 10,
    guestReady: async () => {
      readyAsked++;
      assert.equal(execs, 0, 'no exec before ready');
      return readyAsked > 5;
    },
  });
  assert.equal(execs, 1);
  assert.ok(readyAsked > 5);
  server.close();
});

test("the probe's ssh neither starts nor waits on the config's shared connection, and never prompts", () => {
  const argv = sshExecArgv({ endpoint: loopbackPort(2222), configFile: '/s/ssh_config', alias: 'lb-x' }, 'true', 4500);
  assert.deepEqual(argv.slice(0, 2), ['-F', '/s/ssh_config']);
  for (const option of ['ControlMaster=no', 'ControlPath=none', 'BatchMode=yes', 'ConnectTimeout=5']) assert.ok(argv.includes(option), option);
  assert.deepEqual(argv.slice(-2), ['lb-x', 'true']);
});
