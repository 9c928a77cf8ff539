import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ensureKeyPair, generateKeyPair, isValidKeyPair, type KeyPair } from '../../../src/ssh/keys.js';

const generations = 5000;
/** ssh-keygen costs a process per key (about 4 ms): every fifth key, spread over the run. */
const sshKeygenEvery = 5;
const haveSshKeygen = spawnSync('ssh-keygen', ['-?']).error === undefined;

/** What ssh2's generator makes about once in 256 keys: the public key's leading zero bytes dropped. */
function malformedKeyPair(): KeyPair {
  for (let i = 0; i < 100_000; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'old' });
    if (ssh2.utils.parseKey(pair.private) instanceof Error) return { privateKey: pair.private, publicKey: `${pair.public}\n` };
  }
  throw new Error('ssh2 made no malformed key in 100000 tries');
}

/** Runs `ssh-keygen -y` on every key file in dir in one shell; returns what it printed per file. */
function sshKeygenPublicKeys(dir: string, count: number): string[] {
  // -P '': a key ssh-keygen cannot read would otherwise make it ask for a passphrase on the terminal.
  const script = `i=0; while [ $i -lt ${count} ]; do ssh-keygen -y -P '' -f "$i" 2>&1 < /dev/null | tr '\\n' ' '; echo; i=$((i+1)); done`;
  const run = spawnSync('setsid', ['sh', '-c', script], { cwd: dir, encoding: 'utf8', maxBuffer: 64 * 2 ** 20, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.split('\n').slice(0, count).map((line) => line.trim());
}

test(`${generations} generated key pairs in a row are all valid OpenSSH, and ssh-keygen -y gives back the public key`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-keys-'));
  try {
    const pairs = Array.from({ length: generations }, (_, i) => generateKeyPair(`key-${i}`));
    const invalid = pairs.filter((pair) => !isValidKeyPair(pair));
    assert.equal(invalid.length, 0, `${invalid.length} of ${generations} do not parse: ${invalid[0]?.publicKey}`);
    for (const pair of pairs) assert.match(pair.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} key-\d+\n$/);
    if (!haveSshKeygen) return;
    const sample = pairs.filter((_, i) => i % sshKeygenEvery === 0);
    sample.forEach((pair, i) => writeFileSync(join(dir, String(i)), pair.privateKey, { mode: 0o600 }));
    const derived = sshKeygenPublicKeys(dir, sample.length);
    const differing = sample.filter((pair, i) => derived[i] !== pair.publicKey.trim());
    assert.equal(differing.length, 0, `ssh-keygen -y disagrees on ${differing.length} of ${sample.length}: first ${derived[sample.indexOf(differing[0] as KeyPair)]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the check catches the malformed key ssh2's generator makes, as ssh-keygen does", { skip: !haveSshKeygen && 'no ssh-keygen' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-keys-'));
  try {
    const bad = malformedKeyPair();
    assert.equal(isValidKeyPair(bad), false);
    writeFileSync(join(dir, '0'), bad.privateKey, { mode: 0o600 });
    assert.notEqual(sshKeygenPublicKeys(dir, 1)[0], bad.publicKey.trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stored pair that is not valid OpenSSH is replaced; a valid one is kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-keys-'));
  try {
    const [privatePath, publicPath] = [join(dir, 'id_ed25519'), join(dir, 'id_ed25519.pub')];
    const bad = malformedKeyPair();
    writeFileSync(privatePath, bad.privateKey, { mode: 0o600 });
    writeFileSync(publicPath, bad.publicKey, { mode: 0o600 });
    const replaced = await ensureKeyPair(privatePath, publicPath, 'fresh');
    assert.equal(replaced.created, true);
    assert.ok(isValidKeyPair(replaced));
    assert.equal(readFileSync(privatePath, 'utf8'), replaced.privateKey);
    assert.equal(readFileSync(publicPath, 'utf8'), replaced.publicKey);
    assert.equal(statSync(privatePath).mode & 0o777, 0o600);

    const kept = await ensureKeyPair(privatePath, publicPath, 'other');
    assert.equal(kept.created, false);
    assert.equal(kept.privateKey, replaced.privateKey);

    // Halves of two different pairs do not belong together.
    writeFileSync(publicPath, generateKeyPair('stranger').publicKey);
    assert.equal((await ensureKeyPair(privatePath, publicPath, 'again')).created, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the check reads ssh-keygen's own ed25519 files, and refuses a passphrase, another key type, a truncated file and a line of another key", { skip: !haveSshKeygen && 'no ssh-keygen' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-keys-'));
  try {
    const keygen = (name: string, ...args: string[]): KeyPair => {
      const run = spawnSync('ssh-keygen', ['-q', '-C', name, '-f', join(dir, name), ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      return { privateKey: readFileSync(join(dir, name), 'utf8'), publicKey: readFileSync(join(dir, `${name}.pub`), 'utf8') };
    };
    const plain = keygen('plain', '-t', 'ed25519', '-N', '');
    assert.equal(isValidKeyPair(plain), true);
    assert.equal(isValidKeyPair(keygen('locked', '-t', 'ed25519', '-N', 'secret')), false);
    assert.equal(isValidKeyPair(keygen('rsa', '-t', 'rsa', '-b', '2048', '-N', '')), false);
    const lines = plain.privateKey.trim().split('\n');
    assert.equal(isValidKeyPair({ ...plain, privateKey: [...lines.slice(0, 3), lines.at(-1)].join('\n') }), false);
    assert.equal(isValidKeyPair({ ...plain, publicKey: generateKeyPair('stranger').publicKey }), false);
    assert.equal(isValidKeyPair({ ...plain, publicKey: 'ssh-ed25519 not-base64' }), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
