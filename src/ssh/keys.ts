/**
 * Keys are generated per instance (OpenSSH ed25519): the client key stays in the state dir,
 * the guest's host key goes only into the guest share. Files 0600.
 */
import ssh2 from 'ssh2';
import { writeFileAtomic, readTextIfExists } from '../instance/files.js';

export interface KeyPair {
  readonly privateKey: string;
  /** One line: "ssh-ed25519 AAAA… comment". */
  readonly publicKey: string;
}

export function generateKeyPair(comment: string): KeyPair {
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  return { privateKey: pair.private, publicKey: `${pair.public.trim()}\n` };
}

/** Returns the pair at privatePath/publicPath, generating it the first time (created: true). */
export async function ensureKeyPair(privatePath: string, publicPath: string, comment: string): Promise<KeyPair & { created: boolean }> {
  const [privateKey, publicKey] = await Promise.all([readTextIfExists(privatePath), readTextIfExists(publicPath)]);
  if (privateKey !== undefined && publicKey !== undefined) return { privateKey, publicKey, created: false };
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
