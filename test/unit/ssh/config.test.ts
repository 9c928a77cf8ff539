import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostAlias, knownHostsLine, sshConfigBlock } from '../../../src/ssh/config.js';
import { generateKeyPair, publicKeyBlob } from '../../../src/ssh/keys.js';
import { loopbackPort } from '../../../src/ssh/endpoint.js';

test('the ssh_config pins the host key by alias and uses only the instance key', () => {
  const text = sshConfigBlock({
    alias: hostAlias('default'),
    endpoint: loopbackPort(40222),
    user: 'root',
    identityFile: '/state/id_ed25519',
    knownHostsFile: '/state/known hosts',
  });
  const lines = text.split('\n').map((line) => line.trim());
  for (const expected of [
    'Host linux-builder-default',
    'HostName 127.0.0.1',
    'Port 40222',
    'HostKeyAlias linux-builder-default',
    'IdentityFile /state/id_ed25519',
    'IdentitiesOnly yes',
    'UserKnownHostsFile "/state/known hosts"',
    'StrictHostKeyChecking yes',
  ]) {
    assert.ok(lines.includes(expected), expected);
  }
});

test('generated keys are OpenSSH ed25519 and the known_hosts line carries the blob', () => {
  const pair = generateKeyPair('test');
  assert.match(pair.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  assert.match(pair.publicKey, /^ssh-ed25519 AAAA\S+ test\n$/);
  const line = knownHostsLine('linux-builder-x', pair.publicKey);
  assert.equal(line, `linux-builder-x ssh-ed25519 ${publicKeyBlob(pair.publicKey)}\n`);
});

test('a unix socket endpoint is reached through nc as the ProxyCommand; the key stays pinned by alias', () => {
  const text = sshConfigBlock({
    alias: hostAlias('mac'),
    endpoint: { kind: 'unix', path: '/run/lb/mac/ssh.sock' },
    user: 'root',
    identityFile: '/state/id_ed25519',
    knownHostsFile: '/state/known_hosts',
  });
  const lines = text.split('\n').map((line) => line.trim());
  assert.ok(lines.includes('ProxyCommand nc -U /run/lb/mac/ssh.sock'), text);
  assert.ok(lines.includes('HostKeyAlias linux-builder-mac'));
  assert.ok(!lines.some((line) => line.startsWith('Port ')), text);
});
