/**
 * Every HTTP request of the Debian fetcher: a text (InRelease), or a file downloaded to a temp
 * name, checked against the size and SHA256 the archive signed, and only then renamed into place.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { failed, UserError } from '../errors.js';

/** The mirror did not answer at all (as opposed to answering wrongly): the caller may fall back to its cache. */
export class MirrorUnreachable extends UserError {}

const retryHint = 'retry; if it persists, pass --mirror with another Debian mirror';

/** The innermost cause's code or message: "ECONNREFUSED", "getaddrinfo ENOTFOUND host". */
function reason(error: unknown): string {
  let inner: unknown = error;
  while (typeof inner === 'object' && inner !== null && 'cause' in inner && inner.cause !== undefined) inner = inner.cause;
  if (typeof inner === 'object' && inner !== null && 'code' in inner && typeof inner.code === 'string') return inner.code;
  return inner instanceof Error ? inner.message : String(inner);
}

async function request(url: string, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow' });
  } catch (error) {
    const origin = new URL(url).origin;
    throw new MirrorUnreachable(`cannot reach the Debian mirror ${origin} for ${what} (${reason(error)})`, {
      hint: 'check the network, or pass --mirror with a reachable Debian mirror',
      cause: error,
    });
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel().catch(() => undefined);
    throw failed(`the Debian mirror has no ${what}: ${url} answered HTTP ${response.status}`, 'check that --mirror is a Debian mirror (the URL that holds dists/ and pool/)');
  }
  return response;
}

/** A small text such as InRelease, whole. */
export async function fetchText(url: string, what: string): Promise<string> {
  const response = await request(url, what);
  try {
    return await response.text();
  } catch (error) {
    throw failed(`the download of ${what} from ${url} broke off (${reason(error)})`, retryHint, error);
  }
}

export interface Expected {
  readonly sha256: string;
  readonly size: number;
}

/** Downloads url to dest, which appears only once its size and SHA256 are the expected ones. */
export async function downloadVerified(url: string, dest: string, expected: Expected, what: string, onBytes: (bytes: number) => void = () => undefined): Promise<void> {
  const response = await request(url, what);
  const temp = `${dest}.${process.pid}-${randomBytes(4).toString('hex')}.part`;
  const hash = createHash('sha256');
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      if (received > expected.size) return done(failed(`${what} from ${url} is larger than the ${expected.size} bytes the archive signed`, retryHint));
      hash.update(chunk);
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
  try {
    const body = Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
    try {
      await pipeline(body, counter, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
    } catch (error) {
      // a file system error (it names the file: ENOSPC, EACCES) is ours to report, not the mirror's
      if (error instanceof UserError || (typeof error === 'object' && error !== null && 'path' in error)) throw error;
      throw failed(`the download of ${what} from ${url} broke off after ${received} of ${expected.size} bytes (${reason(error)})`, retryHint, error);
    }
    if (received !== expected.size) {
      throw failed(`the download of ${what} from ${url} ended after ${received} of ${expected.size} bytes`, retryHint);
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== expected.sha256) {
      throw failed(`${what} from ${url} does not match the SHA256 the archive signed (got ${sha256.slice(0, 16)}…, signed ${expected.sha256.slice(0, 16)}…)`, retryHint);
    }
    await rename(temp, dest);
  } finally {
    await rm(temp, { force: true });
  }
}
