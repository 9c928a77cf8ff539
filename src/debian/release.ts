/**
 * A suite's InRelease: its OpenPGP clearsigned text verified against the Debian archive keys,
 * then its fields and the SHA256 list of the index files it vouches for.
 */
import { readFile } from 'node:fs/promises';
import type * as OpenPgp from 'openpgp';
import { parseStanzas } from './packages.js';

/** The Debian archive keys that sign the pinned suite, shipped with the package. */
const archiveKeysFile = new URL('../../keys/debian-archive-trixie.asc', import.meta.url);

export type ArchiveKeys = readonly OpenPgp.PublicKey[];

/** OpenPGP is loaded when a signature is checked, not by every process that imports the fetcher. */
const openpgp = (): Promise<typeof OpenPgp> => import('openpgp');

export async function debianArchiveKeys(): Promise<ArchiveKeys> {
  return (await openpgp()).readKeys({ armoredKeys: await readFile(archiveKeysFile, 'utf8') });
}

export interface IndexFile {
  readonly sha256: string;
  readonly size: number;
}

export interface Release {
  readonly codename: string;
  readonly date: string;
  /** Path under dists/<suite>/ → its hash and size. */
  readonly files: ReadonlyMap<string, IndexFile>;
}

/** Why a signed text was not accepted, as one line. */
export class BadSignature extends Error {}

/** The signed text of a clearsigned message, if at least one signature is good and made by one of the keys. */
export async function verifiedText(clearsigned: string, keys: ArchiveKeys): Promise<string> {
  const { readCleartextMessage, verify } = await openpgp();
  let message: OpenPgp.CleartextMessage;
  try {
    message = await readCleartextMessage({ cleartextMessage: clearsigned });
  } catch {
    throw new BadSignature('it is not an OpenPGP clearsigned text');
  }
  const result = await verify({ message, verificationKeys: [...keys] });
  const reasons: string[] = [];
  for (const signature of result.signatures) {
    try {
      if (await signature.verified) return result.data;
    } catch (error) {
      reasons.push(error instanceof Error ? error.message : String(error));
    }
  }
  throw new BadSignature(reasons.length === 0 ? 'it has no signature' : `no good signature by a Debian archive key (${[...new Set(reasons)].join('; ')})`);
}

export function parseRelease(text: string): Release {
  const fields = parseStanzas(text)[0] ?? new Map<string, string>();
  const files = new Map<string, IndexFile>();
  for (const line of (fields.get('SHA256') ?? '').split('\n')) {
    const [sha256, size, path] = line.trim().split(/\s+/);
    if (sha256 && size && path && /^[0-9a-f]{64}$/.test(sha256)) files.set(path, { sha256, size: Number(size) });
  }
  return { codename: fields.get('Codename') ?? '', date: fields.get('Date') ?? '', files };
}
