/**
 * Keys are generated per instance (OpenSSH ed25519): the client key stays in the state dir,
 * the guest's host key goes only into the guest share. Files 0600.
 *
 * node:crypto makes the key and our own encoder writes it: every pair is valid OpenSSH
 * (ssh2's generator drops leading zero bytes of the public key, about one key in 256).
 */
import { generateKeyPairSync } from 'node:crypto';
import ssh2 from 'ssh2';
import { writeFileAtomic, readTextIfExists } from '../fs/files.js';
import { ed25519PrivateKeyFile, ed25519PublicLine } from './openssh-format.js';

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

/** Both halves parse as OpenSSH and belong together. */
export function isValidKeyPair(pair: KeyPair): boolean {
  const parsedPrivate = ssh2.utils.parseKey(pair.privateKey);
  const parsedPublic = ssh2.utils.parseKey(pair.publicKey);
  if (parsedPrivate instanceof Error || Array.isArray(parsedPrivate)) return false;
  if (parsedPublic instanceof Error || Array.isArray(parsedPublic)) return false;
  return parsedPrivate.type === 'ssh-ed25519' && parsedPrivate.getPublicSSH().equals(parsedPublic.getPublicSSH());
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
