/** A byte range of a file, decompressed by its suffix: "" (none), ".gz", ".xz" or ".zst". */
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';

export const compressions = ['.xz', '.zst', '.gz', ''] as const;
export type Compression = (typeof compressions)[number];

// The xz and zstd decoders are loaded when a stream needs them: the agent and most commands
// never fetch from Debian, and loading them (xz's WebAssembly among them) costs megabytes.
type Decoding = (raw: Readable) => Readable;

/**
 * xz-decompress's stream class, loaded on first use. The package is CommonJS that names itself
 * an ES module (__esModule) without a default export: require reads it the same under Node and tsx.
 */
export function xzReadableStream(): typeof import('xz-decompress').XzReadableStream {
  return (createRequire(import.meta.url)('xz-decompress') as typeof import('xz-decompress')).XzReadableStream;
}

function zstdStream(ZstdDecompress: typeof import('fzstd').Decompress): Transform {
  const decoder = new ZstdDecompress((chunk) => transform.push(chunk));
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        decoder.push(chunk);
        done();
      } catch (error) {
        done(error as Error);
      }
    },
    flush(done) {
      try {
        decoder.push(new Uint8Array(0), true);
        done();
      } catch (error) {
        done(error as Error);
      }
    },
  });
  return transform;
}

function through(raw: Readable, decoder: Transform): Readable {
  raw.on('error', (error) => decoder.destroy(error));
  return raw.pipe(decoder);
}

async function decoding(compression: string): Promise<Decoding> {
  switch (compression) {
    case '':
      return (raw) => raw;
    case '.gz':
      return (raw) => through(raw, createGunzip());
    case '.zst': {
      const { Decompress } = await import('fzstd');
      return (raw) => through(raw, zstdStream(Decompress));
    }
    case '.xz': {
      const XzReadableStream = xzReadableStream();
      return (raw) => {
        const web = Readable.toWeb(raw) as unknown as ReadableStream<Uint8Array>;
        return Readable.fromWeb(new XzReadableStream(web) as unknown as WebReadableStream<Uint8Array>);
      };
    }
    default:
      throw new Error(`unknown compression ${compression}`);
  }
}

/** The decoder is ready before the file is opened: an error opening it always has a listener. */
export async function decompressed(path: string, compression: string, range?: { start: number; size: number }): Promise<Readable> {
  const decode = await decoding(compression);
  const raw = createReadStream(path, range === undefined ? {} : { start: range.start, end: range.start + range.size - 1 });
  let output: Readable;
  try {
    output = decode(raw);
  } catch (error) {
    raw.destroy();
    throw error;
  }
  // a reader that stops early (a failed unpack) must not leave the file open: it would keep a full disk busy
  if (output !== raw) output.once('close', () => raw.destroy());
  return output;
}
