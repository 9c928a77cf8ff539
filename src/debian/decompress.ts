/** A byte range of a file, decompressed by its suffix: "" (none), ".gz", ".xz" or ".zst". */
import { createReadStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import xz from 'xz-decompress';

export const compressions = ['.xz', '.zst', '.gz', ''] as const;
export type Compression = (typeof compressions)[number];

function zstdStream(): Transform {
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

function decoding(raw: Readable, compression: string): Readable {
  switch (compression) {
    case '':
      return raw;
    case '.gz':
      return through(raw, createGunzip());
    case '.zst':
      return through(raw, zstdStream());
    case '.xz': {
      const web = Readable.toWeb(raw) as unknown as ReadableStream<Uint8Array>;
      return Readable.fromWeb(new xz.XzReadableStream(web) as unknown as WebReadableStream<Uint8Array>);
    }
    default:
      throw new Error(`unknown compression ${compression}`);
  }
}

export function decompressed(path: string, compression: string, range?: { start: number; size: number }): Readable {
  const raw = createReadStream(path, range === undefined ? {} : { start: range.start, end: range.start + range.size - 1 });
  let output: Readable;
  try {
    output = decoding(raw, compression);
  } catch (error) {
    raw.destroy();
    throw error;
  }
  // a reader that stops early (a failed unpack) must not leave the file open: it would keep a full disk busy
  if (output !== raw) output.once('close', () => raw.destroy());
  return output;
}
