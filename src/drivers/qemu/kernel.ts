/**
 * Kernel preparation. On x86_64 the distribution bzImage is decompressed once into a vmlinux
 * that QEMU enters through PVH, which saves the guest ~4.5 s of decompression under TCG.
 * Success is judged by the output (an ELF with the PVH entry note), not by the decompressor's
 * exit code: xz exits non-zero on the bzImage's trailing data. On aarch64 the kernel boots as the
 * uncompressed arm64 Image: a gzip-compressed one (Image.gz, as Ubuntu ships it) is decompressed
 * once into the cache; vfkit boots only the uncompressed Image too.
 */
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import type { BootKernel, GuestArch } from '../driver.js';
import { xzReadableStream } from '../../debian/decompress.js';
import { errnoCode, failed } from '../../errors.js';
import { fileSha256, readAt } from '../../fs/files.js';

export { hostTscKhz } from '../../platform/host.js';

interface Codec {
  readonly magic: Buffer;
  readonly command: readonly string[];
  /**
   * The same in this process, for a host without the tool; decoder errors on what follows the
   * stream are the caller's to judge. Distribution xz kernels use xz's x86 BCJ filter, which the
   * in-process decoder lacks: those need the xz tool (setup.sh installs it); zstd ones do not.
   */
  readonly inProcess: (data: Buffer) => Promise<Buffer>;
}

/** Everything a decoder gave before it stopped (at the end of its stream, or on what follows it). */
async function collected(decode: (push: (chunk: Uint8Array) => void) => Promise<void>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  await decode((chunk) => chunks.push(chunk)).catch(() => undefined);
  return Buffer.concat(chunks);
}

const codecs: readonly Codec[] = [
  {
    magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
    command: ['xz', '-dc'],
    inProcess: (data) =>
      collected(async (push) => {
        // Loaded when used: a kernel is extracted once into the cache, and the agent idles without them.
        const XzReadableStream = xzReadableStream();
        for await (const chunk of new XzReadableStream(new Blob([new Uint8Array(data)]).stream()) as unknown as AsyncIterable<Uint8Array>) push(chunk);
      }),
  },
  {
    magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
    command: ['zstd', '-dcq'],
    inProcess: (data) =>
      collected(async (push) => {
        const { Decompress: ZstdDecompress } = await import('fzstd');
        const decoder = new ZstdDecompress((chunk) => push(chunk));
        for (let at = 0; at < data.length; at += 1 << 20) decoder.push(data.subarray(at, at + (1 << 20)));
      }),
  },
  { magic: Buffer.from([0x1f, 0x8b, 0x08]), command: ['gzip', '-dc'], inProcess: (data) => collected(async (push) => push(gunzipSync(data))) },
];

export interface Payload {
  readonly offset: number;
  readonly command: readonly string[];
  /** payload_length from the setup header: the stream and the uncompressed size the kernel build appends. */
  readonly length?: number;
}

/**
 * Where the compressed kernel starts inside a bzImage: at the setup header's payload_offset
 * when that holds a known magic, else the first known magic anywhere.
 */
export function findPayload(bzImage: Buffer): Payload | undefined {
  if (bzImage.length > 0x250 && bzImage.toString('latin1', 0x202, 0x206) === 'HdrS') {
    const setupSectors = bzImage[0x1f1] || 4;
    const offset = (setupSectors + 1) * 512 + bzImage.readUInt32LE(0x248);
    const codec = codecs.find((c) => bzImage.subarray(offset, offset + c.magic.length).equals(c.magic));
    if (codec !== undefined) return { offset, command: codec.command, length: bzImage.readUInt32LE(0x24c) };
  }
  let best: Payload | undefined;
  for (const codec of codecs) {
    const offset = bzImage.indexOf(codec.magic);
    if (offset >= 0 && (best === undefined || offset < best.offset)) best = { offset, command: codec.command };
  }
  return best;
}

const elfNoteType = 4; // PT_NOTE
const xenElfNotePhys32Entry = 18;
/** Bounds what a corrupt header can make us allocate. */
const maxHeaderBytes = 1 << 20;

/** True for an ELF64 little-endian file with Xen's PHYS32_ENTRY note: QEMU can boot it via PVH. */
export async function hasPvhNote(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const header = await readAt(file, 0, 64);
    if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = await readAt(file, phoff, Math.min(phentsize * phnum, maxHeaderBytes));
    for (let i = 0; i < phnum; i++) {
      const entry = table.subarray(i * phentsize, (i + 1) * phentsize);
      if (entry.length < 0x28 || entry.readUInt32LE(0) !== elfNoteType) continue;
      const size = Number(entry.readBigUInt64LE(0x20));
      if (size > maxHeaderBytes) continue;
      const notes = await readAt(file, Number(entry.readBigUInt64LE(0x08)), size);
      if (notesInclude(notes, 'Xen', xenElfNotePhys32Entry)) return true;
    }
    return false;
  } finally {
    await file.close();
  }
}

/** Walks an ELF note segment: namesz, descsz, type, name and desc padded to 4 bytes. */
export function notesInclude(notes: Buffer, name: string, type: number): boolean {
  const pad = (n: number): number => (n + 3) & ~3;
  for (let at = 0; at + 12 <= notes.length; ) {
    const namesz = notes.readUInt32LE(at);
    const descsz = notes.readUInt32LE(at + 4);
    const noteType = notes.readUInt32LE(at + 8);
    const noteName = notes.toString('latin1', at + 12, at + 12 + namesz).replace(/\0+$/, '');
    if (noteName === name && noteType === type) return true;
    at += 12 + pad(namesz) + pad(descsz);
  }
  return false;
}

async function readHead(path: string, length: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    return await readAt(file, 0, length);
  } finally {
    await file.close();
  }
}

/** The arm64 boot header's magic, "ARM\x64" at offset 0x38 (Documentation/arch/arm64/booting.rst). */
const arm64ImageMagic = 0x644d5241;

export function isArm64Image(data: Buffer): boolean {
  return data.length >= 64 && data.readUInt32LE(0x38) === arm64ImageMagic;
}

/** The uncompressed arm64 Image: the file itself, or its gzip decompressed once into the cache. */
export async function prepareArm64Image(image: string, cacheDir: string): Promise<BootKernel> {
  const head = await readHead(image, 64);
  if (isArm64Image(head)) return { path: image, format: 'image' };
  const gzip = codecs.find((c) => c.command[0] === 'gzip');
  if (gzip === undefined || !head.subarray(0, gzip.magic.length).equals(gzip.magic)) {
    throw failed(`${image} is neither an arm64 Image nor a gzip-compressed one`, 'pass --kernel with an arm64 kernel (vmlinuz, Image or Image.gz)');
  }
  const key = (await fileSha256(image)).slice(0, 32);
  const dir = join(cacheDir, 'kernels');
  const uncompressed = join(dir, `Image-${key}`);
  if (await exists(uncompressed)) return { path: uncompressed, format: 'image' };
  const decoded = await gzip.inProcess(await readFile(image));
  if (!isArm64Image(decoded)) throw failed(`${image} decompresses to something that is not an arm64 Image`, 'pass --kernel with an arm64 kernel (vmlinuz, Image or Image.gz)');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${uncompressed}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temp, decoded, { mode: 0o600 });
    await syncFile(temp);
    await rename(temp, uncompressed);
  } finally {
    await rm(temp, { force: true });
  }
  return { path: uncompressed, format: 'image' };
}

export async function prepareKernel(image: string, cacheDir: string, arch: GuestArch): Promise<BootKernel> {
  if (arch === 'aarch64') return prepareArm64Image(image, cacheDir);
  // Already an uncompressed vmlinux with a PVH entry (e.g. --kernel vmlinux): boot it as it is.
  if (await hasPvhNote(image).catch(() => false)) return { path: image, format: 'vmlinux-pvh' };
  // Hashed in chunks and read whole only when not cached: a boot reads no more of it than that.
  const key = (await fileSha256(image)).slice(0, 32);
  const dir = join(cacheDir, 'kernels');
  const vmlinux = join(dir, `vmlinux-${key}`);
  const noPvhMarker = `${vmlinux}.no-pvh`;
  if (await exists(vmlinux)) return { path: vmlinux, format: 'vmlinux-pvh' };
  if (await exists(noPvhMarker)) return { path: image, format: 'bzImage' };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const bzImage = await readFile(image);
  const payload = findPayload(bzImage);
  const temp = `${vmlinux}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const decompressed = payload !== undefined && (await decompress(image, bzImage, payload, temp));
    if (decompressed && (await hasPvhNote(temp).catch(() => false))) {
      await syncFile(temp);
      await rename(temp, vmlinux);
      return { path: vmlinux, format: 'vmlinux-pvh' };
    }
    // Only a kernel that was decompressed and has no PVH entry is recorded as such; one that
    // could not be decompressed here is tried again at the next start.
    if (decompressed || payload === undefined) await writeFile(noPvhMarker, '');
    return { path: image, format: 'bzImage' };
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * The payload decompressed into `output`: by the host's tool, else in this process; false when
 * neither could. A failed write (a full disk) rejects: that says nothing about the kernel.
 */
async function decompress(image: string, bzImage: Buffer, payload: Payload, output: string): Promise<boolean> {
  if (await decompressWithTool(image, payload, output)) return true;
  const codec = codecs.find((c) => c.command === payload.command);
  if (codec === undefined || payload.length === undefined || payload.length < 4) return false;
  const data = bzImage.subarray(payload.offset, payload.offset + payload.length);
  const vmlinux = await codec.inProcess(data);
  // The kernel build appends the uncompressed size (gzip's own trailer holds it too): only a
  // complete output counts, a decoder that stopped early must not leave a truncated vmlinux.
  if (vmlinux.length !== data.readUInt32LE(data.length - 4)) return false;
  await writeFile(output, vmlinux, { mode: 0o600 });
  return true;
}

/** Streams the payload through the host's decompressor into `output`; false if it could not run. */
async function decompressWithTool(image: string, payload: Payload, output: string): Promise<boolean> {
  const [command, ...args] = payload.command;
  const child = spawn(command ?? 'false', args, { stdio: ['pipe', 'pipe', 'ignore'] });
  const started = new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  const input = createReadStream(image, { start: payload.offset });
  input.on('error', () => child.kill('SIGKILL'));
  // The decompressor stops reading at the end of its stream; the rest of the bzImage is not for it.
  child.stdin.on('error', () => input.destroy());
  input.pipe(child.stdin);
  try {
    await pipeline(child.stdout, createWriteStream(output, { mode: 0o600 }));
  } catch (error) {
    // Stopped writing: the decompressor must not wait forever on a full pipe.
    child.kill('SIGKILL');
    input.destroy();
    if (!(await started)) return false;
    throw error;
  }
  return started;
}

/** On disk before it gets its final name, as every cache file: a crash leaves no empty vmlinux. */
async function syncFile(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw error;
  }
}
