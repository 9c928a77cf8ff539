/**
 * Keys are generated per instance (OpenSSH ed25519): the client key stays in the state dir,
 * the guest's host key goes only into the guest share. Files 0600.
 *
 * node:crypto makes the key and our own encoder writes it: every pair is valid OpenSSH
 * (ssh2's generator drops leading zero bytes of the public key, about one key in 256).
 */
import { generateKeyPairSync } from 'node:crypto';
import ssh2 from 'ssh2';
import { writeFileAtomic, readTextIfExists } from '../instance/files.js';
import { ed25519PrivateKeyFile, ed25519PublicLine } from './openssh-format.js';

export interface KeyPair {
  readonly privateKey: string;
  /** One line: "ssh-ed25519 AAAA… comment". */
  readonly publicKey: string;
}

export function generateKeyPair(comment: string): KeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (jwk.d === undefined || jwk.x === undefined) throw new Error('node:crypto exported an ed25519 key without its parts');
  const seed = Buffer.from(jwk.d, 'base64url');
  const publicKey = Buffer.from(jwk.x, 'base64url');
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
