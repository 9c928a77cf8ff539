import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { QmpClient, QmpError } from '../../../src/drivers/qemu/qmp.js';

// Unix socket paths must stay short: a temp dir directly under /tmp.
let dir: string;
before(async () => {
  dir = await mkdtemp('/tmp/lbqmp-');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Reply = (command: { execute: string; arguments?: unknown; id?: unknown }, socket: Socket) => void;

/** A fake QEMU: greets, then answers each command line with `reply`. Returns the commands it saw. */
async function fakeQmp(path: string, reply: Reply, greet = true): Promise<{ server: Server; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((socket) => {
    if (greet) socket.write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}\r\n');
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const command = JSON.parse(buffered.slice(0, newline)) as { execute: string; id?: unknown };
        buffered = buffered.slice(newline + 1);
        seen.push(command.execute);
        reply(command, socket);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { server, seen };
}

function answer(socket: Socket, message: unknown): void {
  socket.write(`${JSON.stringify(message)}\r\n`);
}

const standard: Reply = (command, socket) => {
  if (command.execute === 'query-status') {
    // An event and a reply to somebody else first: both must be ignored.
    answer(socket, { event: 'RESUME', timestamp: { seconds: 1, microseconds: 2 } });
    answer(socket, { return: { status: 'wrong' }, id: 'not-ours' });
    answer(socket, { return: { status: 'running', running: true }, id: command.id });
  } else if (command.execute === 'no-such-command') {
    answer(socket, { error: { class: 'CommandNotFound', desc: 'The command no-such-command has not been found' }, id: command.id });
  } else if (command.execute === 'slow') {
    // never answers
  } else {
    answer(socket, { return: {}, id: command.id });
  }
};

test('negotiates capabilities, then matches replies by id and ignores events', async () => {
  const path = join(dir, 'a.sock');
  const { server, seen } = await fakeQmp(path, standard);
  const client = await QmpClient.connect(path, 1000);
  try {
    assert.deepEqual(await client.execute('query-status'), { status: 'running', running: true });
    assert.deepEqual(seen, ['qmp_capabilities', 'query-status']);
  } finally {
    client.close();
    server.close();
  }
});

test('an error reply rejects with its description', async () => {
  const path = join(dir, 'b.sock');
  const { server } = await fakeQmp(path, standard);
  const client = await QmpClient.connect(path, 1000);
  try {
    await assert.rejects(client.execute('no-such-command'), (e: unknown) => e instanceof QmpError && /has not been found/.test(e.message));
    // The session still works after an error.
    assert.deepEqual(await client.execute('stop'), {});
  } finally {
    client.close();
    server.close();
  }
});

test('a command without reply times out', async () => {
  const path = join(dir, 'c.sock');
  const { server } = await fakeQmp(path, standard);
  const client = await QmpClient.connect(path, 1000);
  try {
    await assert.rejects(client.execute('slow', undefined, 100), /no reply within 100 ms/);
  } finally {
    client.close();
    server.close();
  }
});

test('arguments travel under "arguments"', async () => {
  const path = join(dir, 'd.sock');
  let received: unknown;
  const { server } = await fakeQmp(path, (command, socket) => {
    if (command.execute === 'human-monitor-command') received = command.arguments;
    answer(socket, { return: '', id: command.id });
  });
  const client = await QmpClient.connect(path, 1000);
  try {
    await client.execute('human-monitor-command', { 'command-line': 'info status' });
    assert.deepEqual(received, { 'command-line': 'info status' });
  } finally {
    client.close();
    server.close();
  }
});

test('a server that closes the connection rejects pending commands', async () => {
  const path = join(dir, 'e.sock');
  const { server } = await fakeQmp(path, (command, socket) => {
    if (command.execute === 'quit') socket.destroy();
    else answer(socket, { return: {}, id: command.id });
  });
  const client = await QmpClient.connect(path, 1000);
  try {
    await assert.rejects(client.execute('quit', undefined, 2000), /closed/);
    await assert.rejects(client.execute('query-status'), /closed/);
  } finally {
    client.close();
    server.close();
  }
});

test('no socket: connect rejects at once', async () => {
  await assert.rejects(QmpClient.connect(join(dir, 'missing.sock'), 1000), (e: unknown) => e instanceof QmpError && /ENOENT/.test(e.message));
});

test('no greeting: connect rejects after its timeout', async () => {
  const path = join(dir, 'f.sock');
  const { server } = await fakeQmp(path, standard, false);
  try {
    await assert.rejects(QmpClient.connect(path, 150), /no greeting/);
  } finally {
    server.close();
  }
});
