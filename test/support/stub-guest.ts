/**
 * A stand-in for the guest's sshd, for the fake vfkit: an ssh2 server with the instance's guest
 * host key that admits the instance's client key, runs each command on this host with sh, and
 * takes "poweroff" as the guest powering off.
 */
import { spawn } from 'node:child_process';
import type { Server as NetServer } from 'node:net';
import ssh2 from 'ssh2';

export function stubGuest(hostKey: string, authorizedKeys: string, onPowerOff: () => void): NetServer {
  const allowed = authorizedKeys
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => ssh2.utils.parseKey(line))
    .filter((key): key is ssh2.ParsedKey => !(key instanceof Error));
  return new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const key = allowed.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data));
      if (key === undefined) return ctx.reject(['publickey']);
      if (ctx.signature === undefined) return ctx.accept();
      return key.verify(ctx.blob ?? Buffer.alloc(0), ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject(['publickey']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (accept, _reject, info) => {
          const stream = accept();
          if (/(^|\/)poweroff$/.test(info.command.trim())) {
            stream.exit(0);
            stream.end();
            onPowerOff();
            return;
          }
          const child = spawn('sh', ['-c', info.command], { stdio: ['pipe', 'pipe', 'pipe'] });
          stream.pipe(child.stdin);
          child.stdout.pipe(stream, { end: false });
          child.stderr.pipe(stream.stderr, { end: false });
          child.on('close', (code) => {
            stream.exit(code ?? 1);
            stream.end();
          });
        });
      });
    });
    client.on('error', () => client.end());
  });
}
