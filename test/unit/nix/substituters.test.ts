import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { reachableSubstituters } from '../../../src/nix/substituters.js';

/** A local HTTP server: /ok is a cache, /gone is not, /moved redirects to /ok, /loop to itself. */
async function withServer(run: (base: string) => Promise<void>): Promise<void> {
  const server: Server = createServer((request, response) => {
    const url = request.url ?? '';
    if (url === '/ok/nix-cache-info') response.writeHead(200).end('StoreDir: /nix/store\n');
    else if (url === '/moved/nix-cache-info') response.writeHead(301, { location: '/ok/nix-cache-info' }).end();
    else if (url === '/loop/nix-cache-info') response.writeHead(302, { location: '/loop/nix-cache-info' }).end();
    else if (url === '/silent/nix-cache-info') return; // never answers
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await run(`http://127.0.0.1:${port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('substituters that answer /nix-cache-info with 2xx are kept, after redirects; the rest are dropped', async () => {
  await withServer(async (base) => {
    const kept = await reachableSubstituters([`${base}/ok`, `${base}/ok/`, `${base}/gone`, `${base}/moved`, `${base}/loop`]);
    assert.deepEqual(kept, [`${base}/ok`, `${base}/ok/`, `${base}/moved`]);
  });
});

test('a refused port, a cache that never answers (the probe times out), and non-HTTP stores are dropped', async () => {
  await withServer(async (base) => {
    const refused = await new Promise<string>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(`http://127.0.0.1:${port}`));
      });
    });
    const kept = await reachableSubstituters([refused, `${base}/silent`, 's3://bucket', 'file:///nix/store', 'http://[bad', `${base}/ok`]);
    assert.deepEqual(kept, [`${base}/ok`]);
  });
});
