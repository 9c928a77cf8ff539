/**
 * OpenSSH's own encodings of an ed25519 key pair: the "openssh-key-v1" private key file
 * (unencrypted) and the one-line public key. Raw 32-byte keys in, text out; nothing else.
 * The layout is OpenSSH's PROTOCOL.key.
 */
import { randomBytes } from 'node:crypto';

const keyType = 'ssh-ed25519';
const magic = 'openssh-key-v1\0';
/** The cipher "none" pads the private section to 8 bytes. */
const blockSize = 8;

/** SSH wire format: a uint32 length, then the bytes. */
function sshString(data: string | Uint8Array): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

function checkLength(what: string, bytes: Uint8Array, expected: number): void {
  if (bytes.length !== expected) throw new Error(`ed25519 ${what} must be ${expected} bytes, got ${bytes.length}`);
}

/** The public key blob: what known_hosts, authorized_keys and Nix's machines file carry in base64. */
export function ed25519PublicBlob(publicKey: Uint8Array): Buffer {
  checkLength('public key', publicKey, 32);
  return Buffer.concat([sshString(keyType), sshString(publicKey)]);
}

/** "ssh-ed25519 AAAA… comment\n" */
export function ed25519PublicLine(publicKey: Uint8Array, comment: string): string {
  return `${keyType} ${ed25519PublicBlob(publicKey).toString('base64')}${comment ? ` ${comment}` : ''}\n`;
}

/** "-----BEGIN OPENSSH PRIVATE KEY-----" … , as ssh-keygen writes it without a passphrase. */
export function ed25519PrivateKeyFile(seed: Uint8Array, publicKey: Uint8Array, comment: string): string {
  checkLength('private seed', seed, 32);
  const blob = ed25519PublicBlob(publicKey);
  // Two equal random words: a passphrase-less key has nothing to check them against, but readers compare them.
  const check = randomBytes(4).readUInt32BE();
  const section = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString(keyType),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])), // OpenSSH keeps the 64-byte form: seed, then public key
    sshString(comment),
  ]);
  const padLength = (blockSize - (section.length % blockSize)) % blockSize;
  const padding = Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from(magic, 'latin1'),
    sshString('none'), // cipher
    sshString('none'), // kdf
    sshString(''), // kdf options
    uint32(1), // number of keys
    sshString(blob),
    sshString(Buffer.concat([section, padding])),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return ['-----BEGIN OPENSSH PRIVATE KEY-----', ...lines, '-----END OPENSSH PRIVATE KEY-----', ''].join('\n');
}
