import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectEndpoint, describeEndpoint, loopbackPort, sshEndpointSchema, type SshEndpoint } from '../../../src/ssh/endpoint.js';
import { readRunState, writeRunState, type RunState } from '../../../src/instance/state.js';

test('an endpoint is described as host:port (IPv6 in brackets) or as the socket path', () => {
  assert.deepEqual(loopbackPort(4022), { kind: 'tcp', host: '127.0.0.1', port: 4022 });
  assert.equal(describeEndpoint(loopbackPort(4022)), '127.0.0.1:4022');
  assert.equal(describeEndpoint({ kind: 'tcp', host: '::1', port: 4022 }), '[::1]:4022');
  assert.equal(describeEndpoint({ kind: 'unix', path: '/run/lb/ssh.sock' }), '/run/lb/ssh.sock');
  assert.equal(sshEndpointSchema.safeParse({ kind: 'unix', path: 'relative.sock' }).success, false);
  assert.equal(sshEndpointSchema.safeParse({ kind: 'tcp', host: '127.0.0.1', port: 0 }).success, false);
});

async function greeter(server: Server, listen: (server: Server) => Promise<void>): Promise<void> {
  server.on('connection', (socket) => socket.end('SSH-2.0-test\r\n'));
  await listen(server);
}

test('connectEndpoint reaches a TCP port and a unix socket alike', async () => {
  const tcp = createServer();
  const unix = createServer();
  const path = join(mkdtempSync(join(tmpdir(), 'lb-ep-')), 's.sock');
  try {
    await greeter(tcp, (s) => new Promise((resolve) => s.listen(0, '127.0.0.1', resolve)));
    await greeter(unix, (s) => new Promise((resolve) => s.listen(path, resolve)));
    const address = tcp.address();
    const endpoints: SshEndpoint[] = [loopbackPort(typeof address === 'object' && address ? address.port : 0), { kind: 'unix', path }];
    for (const endpoint of endpoints) {
      const banner = await new Promise<string>((resolve, reject) => {
        let text = '';
        connectEndpoint(endpoint).on('data', (chunk: Buffer) => (text += chunk.toString())).on('end', () => resolve(text)).on('error', reject);
      });
      assert.equal(banner, 'SSH-2.0-test\r\n', describeEndpoint(endpoint));
    }
  } finally {
    tcp.close();
    unix.close();
  }
});

const run: RunState = {
  version: 1, phase: 'running', pid: 7, driver: 'qemu', accel: 'tcg', accelReason: '', cores: 1, memoryMiB: 1024,
  systems: ['x86_64-linux'], ssh: { kind: 'unix', path: '/run/lb/ssh.sock' }, startedAt: '2026-01-01T00:00:00.000Z', bootSeconds: 8, kernel: 'k', initrd: 'i',
};

test('state.json keeps the endpoint; one written before endpoints had a kind (sshPort) reads as a loopback port', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-state-'));
  await mkdir(dir, { recursive: true });
  await writeRunState(join(dir, 'unix.json'), run);
  assert.deepEqual(await readRunState(join(dir, 'unix.json')), { kind: 'ok', value: run });
  const { ssh: _ssh, ...rest } = run;
  await writeFile(join(dir, 'old.json'), JSON.stringify({ ...rest, sshPort: 40000 }));
  const old = await readRunState(join(dir, 'old.json'));
  assert.equal(old.kind, 'ok');
  assert.deepEqual(old.kind === 'ok' && old.value.ssh, { kind: 'tcp', host: '127.0.0.1', port: 40000 });
  await writeFile(join(dir, 'none.json'), JSON.stringify(rest));
  assert.equal((await readRunState(join(dir, 'none.json'))).kind, 'corrupt');
});
