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

/** Reads SSH wire strings and uint32s off a buffer; every read throws when the bytes run out. */
class WireReader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}
  uint32(): number {
    if (this.offset + 4 > this.bytes.length) throw new Error('truncated');
    const value = this.bytes.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }
  string(): Buffer {
    const length = this.uint32();
    if (this.offset + length > this.bytes.length) throw new Error('truncated');
    const value = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  magic(text: string): boolean {
    const value = this.bytes.subarray(this.offset, this.offset + text.length).toString('latin1');
    this.offset += text.length;
    return value === text;
  }
}

/** The raw 32-byte key of a public key blob, or undefined when it is not an ed25519 blob. */
export function ed25519PublicFromBlob(blob: Buffer): Buffer | undefined {
  try {
    const reader = new WireReader(blob);
    if (reader.string().toString('latin1') !== keyType) return undefined;
    const publicKey = reader.string();
    return publicKey.length === 32 ? publicKey : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The seed and public key of an unencrypted "openssh-key-v1" ed25519 key file, or undefined when
 * the text is anything else (another key type, a passphrase, a truncated or inconsistent file).
 */
export function readEd25519PrivateKeyFile(text: string): { seed: Buffer; publicKey: Buffer } | undefined {
  const armored = /-----BEGIN OPENSSH PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!armored?.[1]) return undefined;
  try {
    const reader = new WireReader(Buffer.from(armored[1].replace(/\s+/g, ''), 'base64'));
    if (!reader.magic(magic)) return undefined;
    if (reader.string().toString('latin1') !== 'none' || reader.string().toString('latin1') !== 'none') return undefined;
    reader.string(); // kdf options
    if (reader.uint32() !== 1) return undefined;
    const outerPublic = ed25519PublicFromBlob(reader.string());
    const section = new WireReader(reader.string());
    if (section.uint32() !== section.uint32()) return undefined;
    if (section.string().toString('latin1') !== keyType) return undefined;
    const publicKey = section.string();
    const both = section.string();
    if (!outerPublic || publicKey.length !== 32 || both.length !== 64) return undefined;
    if (!outerPublic.equals(publicKey) || !both.subarray(32).equals(publicKey)) return undefined;
    return { seed: both.subarray(0, 32), publicKey };
  } catch {
    return undefined;
  }
}
