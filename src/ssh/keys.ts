/**
 * Keys are generated per instance (OpenSSH ed25519): the client key stays in the state dir,
 * the guest's host key goes only into the guest share. Files 0600.
 *
 * node:crypto makes the key and our own encoder writes it: every pair is valid OpenSSH
 * (ssh2's generator drops leading zero bytes of the public key, about one key in 256).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { writeFileAtomic, readTextIfExists } from '../fs/files.js';
import { ed25519PrivateKeyFile, ed25519PublicFromBlob, ed25519PublicLine, readEd25519PrivateKeyFile } from './openssh-format.js';

export interface KeyPair {
  readonly privateKey: string;
  /** One line: "ssh-ed25519 AAAA… comment". */
  readonly publicKey: string;
}

/** DER prefixes of an Ed25519 key (RFC 8410): what precedes the 32-byte seed and public key. */
const pkcs8Ed25519Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
const spkiEd25519Prefix = Buffer.from('302a300506032b6570032100', 'hex');

export function generateKeyPair(comment: string): KeyPair {
  // Encoded by the generation itself, as DER: no KeyObject is exported afterwards. (Exporting
  // ed25519 KeyObjects as JWK in a loop can deadlock Node 20 when a collection runs mid-export.)
  const pair = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const der = { private: Buffer.from(pair.privateKey), public: Buffer.from(pair.publicKey) };
  if (!der.private.subarray(0, 16).equals(pkcs8Ed25519Prefix) || der.private.length !== 48 || !der.public.subarray(0, 12).equals(spkiEd25519Prefix) || der.public.length !== 44) {
    throw new Error('node:crypto encoded an ed25519 key in an unexpected DER form');
  }
  const seed = der.private.subarray(16);
  const publicKey = der.public.subarray(12);
  return { privateKey: ed25519PrivateKeyFile(seed, publicKey, comment), publicKey: ed25519PublicLine(publicKey, comment) };
}

/**
 * Both halves are OpenSSH ed25519 and belong together: the private file's seed derives the public
 * key that the file and the public line both carry.
 */
export function isValidKeyPair(pair: KeyPair): boolean {
  const parsed = readEd25519PrivateKeyFile(pair.privateKey);
  const blob = pair.publicKey.trim().split(/\s+/);
  if (!parsed || blob[0] !== 'ssh-ed25519' || !blob[1]) return false;
  const lined = ed25519PublicFromBlob(Buffer.from(blob[1], 'base64'));
  if (!lined?.equals(parsed.publicKey)) return false;
  const derived = createPublicKey(createPrivateKey({ key: Buffer.concat([pkcs8Ed25519Prefix, parsed.seed]), format: 'der', type: 'pkcs8' }))
    .export({ format: 'der', type: 'spki' })
    .subarray(spkiEd25519Prefix.length);
  return derived.equals(parsed.publicKey);
}

/**
 * Returns the pair at privatePath/publicPath, generating it the first time, or when the stored
 * pair is not valid OpenSSH (written by an older generator): created is then true.
 */
export async function ensureKeyPair(privatePath: string, publicPath: string, comment: string): Promise<KeyPair & { created: boolean }> {
  const [privateKey, publicKey] = await Promise.all([readTextIfExists(privatePath), readTextIfExists(publicPath)]);
  if (privateKey !== undefined && publicKey !== undefined && isValidKeyPair({ privateKey, publicKey })) {
    return { privateKey, publicKey, created: false };
  }
  const pair = generateKeyPair(comment);
  await writeFileAtomic(privatePath, pair.privateKey, 0o600);
  await writeFileAtomic(publicPath, pair.publicKey, 0o600);
  return { ...pair, created: true };
}

/** The base64 blob of a public key line, as pinned in known_hosts and Nix's machines file. */
export function publicKeyBlob(publicKeyLine: string): string {
  const blob = publicKeyLine.trim().split(/\s+/)[1];
  if (!blob) throw new Error(`not an OpenSSH public key: ${publicKeyLine.slice(0, 40)}`);
  return blob;
}
