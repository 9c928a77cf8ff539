/** The host port forwarded to the guest's sshd: picked free once, kept for the instance's life. */
import { createServer } from 'node:net';
import { execFile } from 'node:child_process';
import { loopbackHost } from '../ssh/endpoint.js';

export function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, loopbackHost, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, loopbackHost, () => server.close(() => resolve(true)));
  });
}

/** Best effort: "pid 123 (python3)" for the process listening on port, from ss(8). */
export function describePortHolder(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('ss', ['-ltnpH', `sport = :${port}`], { timeout: 2000 }, (error, stdout) => {
      if (error) return resolve(undefined);
      const match = /users:\(\("([^"]+)",pid=(\d+)/.exec(stdout);
      resolve(match ? `pid ${match[2]} (${match[1]})` : stdout.trim() ? 'another program' : undefined);
    });
  });
}
