import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { defaultSettings } from '../../../src/config/settings.js';
import { guestShareFiles } from '../../../src/guest/layout.js';
import { ensureIdentity } from '../../../src/instance/identity.js';
import { instancePaths } from '../../../src/instance/paths.js';
import { isValidKeyPair, publicKeyBlob } from '../../../src/ssh/keys.js';

const forwarded = { ssh: 'forwarded-port' } as const;

/** A key pair as ssh2's generator wrote it about once in 256: its public key's leading zero byte dropped. */
function malformedKeyPair(): { private: string; public: string } {
  for (let i = 0; i < 100_000; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (ssh2.utils.parseKey(pair.private) instanceof Error) return pair;
  }
  throw new Error('ssh2 made no malformed key in 100000 tries');
}

test("a stored key that is not valid OpenSSH gets new keys at the instance's next start, and known_hosts pins the new host key", async () => {
  const base = mkdtempSync(join(tmpdir(), 'lb-identity-'));
  try {
    const paths = instancePaths('keys', { state: join(base, 'state'), cache: join(base, 'cache'), runtime: join(base, 'run') });
    const settings = defaultSettings();
    const first = await ensureIdentity(paths, settings, forwarded);
    assert.equal(first.newKeys, true, 'the first start makes keys');
    const second = await ensureIdentity(paths, first.settings, forwarded);
    assert.equal(second.newKeys, false, 'valid keys are kept');
    assert.equal(second.hostPublicKey, first.hostPublicKey);

    const hostKey = join(paths.guestShare, guestShareFiles.hostKey);
    const hostKeyPub = join(paths.guestShare, guestShareFiles.hostKeyPub);
    const bad = malformedKeyPair();
    writeFileSync(hostKey, bad.private, { mode: 0o600 });
    writeFileSync(hostKeyPub, `${bad.public}\n`, { mode: 0o600 });
    const clientBefore = readFileSync(paths.clientKey, 'utf8');
    const third = await ensureIdentity(paths, first.settings, forwarded);
    assert.equal(third.newKeys, true, 'a malformed host key is replaced');
    assert.notEqual(third.hostPublicKey, `${bad.public}\n`);
    assert.ok(isValidKeyPair({ privateKey: readFileSync(hostKey, 'utf8'), publicKey: readFileSync(hostKeyPub, 'utf8') }));
    assert.match(readFileSync(paths.knownHosts, 'utf8'), new RegExp(`ssh-ed25519 ${publicKeyBlob(third.hostPublicKey).replace(/[+]/g, '\\+')}\\n$`));
    assert.equal(readFileSync(paths.clientKey, 'utf8'), clientBefore, 'the valid client key is kept');

    writeFileSync(paths.clientKey, bad.private, { mode: 0o600 });
    writeFileSync(paths.clientKeyPub, `${bad.public}\n`, { mode: 0o600 });
    const fourth = await ensureIdentity(paths, first.settings, forwarded);
    assert.equal(fourth.newKeys, true, 'a malformed client key is replaced');
    assert.ok(isValidKeyPair({ privateKey: readFileSync(paths.clientKey, 'utf8'), publicKey: readFileSync(paths.clientKeyPub, 'utf8') }));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('the ssh_config reaches the guest where the driver says: a kept loopback port, or the instance\'s vsock socket (no port picked)', async () => {
  const base = mkdtempSync(join(tmpdir(), 'lb-identity-'));
  try {
    const paths = instancePaths('reach', { state: join(base, 'state'), cache: join(base, 'cache'), runtime: join(base, 'run') });
    const viaPort = await ensureIdentity(paths, defaultSettings(), forwarded);
    assert.ok(viaPort.settings.sshPort !== undefined);
    assert.deepEqual(viaPort.sshHost.endpoint, { kind: 'tcp', host: '127.0.0.1', port: viaPort.settings.sshPort });
    assert.match(readFileSync(paths.sshConfig, 'utf8'), new RegExp(`\\n {2}Port ${viaPort.settings.sshPort}\\n`));
    const viaVsock = await ensureIdentity(instancePaths('vsock', { state: join(base, 'state'), cache: join(base, 'cache'), runtime: join(base, 'run') }), defaultSettings(), { ssh: 'vsock-socket' });
    assert.equal(viaVsock.settings.sshPort, undefined);
    assert.deepEqual(viaVsock.sshHost.endpoint, { kind: 'unix', path: join(base, 'run', 'vsock', 'guest-ssh.sock') });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
