/**
 * What a kernel image is, from its bytes: its architecture and its version. An x86 bzImage by
 * its setup header (which points to the version), an arm64 Image by its boot header (also
 * gzip-compressed, Image.gz), an uncompressed vmlinux by its ELF machine; the version of the
 * last two from the "Linux version" banner inside. So a --kernel of the wrong architecture is
 * refused before anything is written, and a kernel's modules are found by its version whatever
 * its file is called.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { GuestArch } from '../drivers/driver.js';
import { elfMachine, elfMachines } from './elf.js';

export interface KernelImageFacts {
  /** undefined: not a kind of image this module knows. */
  readonly arch: GuestArch | undefined;
  /** undefined: neither its header nor a banner says. */
  readonly version: string | undefined;
}

const versionPattern = /^\d+\.\d+[\w.+~-]*$/;

/** The kernel_version string of a bzImage: the setup header's field at 0x20E points to it (+0x200). */
export function bzImageVersion(header: Buffer): string | undefined {
  if (!isBzImage(header)) return undefined;
  const pointer = header.readUInt16LE(0x20e);
  if (pointer === 0) return undefined;
  const start = pointer + 0x200;
  const end = header.indexOf(0, start);
  if (start >= header.length || end < 0) return undefined;
  const version = header.toString('latin1', start, end).split(' ')[0] ?? '';
  return versionPattern.test(version) ? version : undefined;
}

function isBzImage(data: Buffer): boolean {
  return data.length >= 0x210 && data.toString('latin1', 0x202, 0x206) === 'HdrS';
}

/** "ARM\x64" at 0x38 of the arm64 boot header (Documentation/arch/arm64/booting.rst). */
function isArm64Image(data: Buffer): boolean {
  return data.length >= 64 && data.readUInt32LE(0x38) === 0x644d5241;
}

const isGzip = (data: Buffer): boolean => data.length > 3 && data[0] === 0x1f && data[1] === 0x8b && data[2] === 0x08;

/** The release in the kernel's own banner, "Linux version 6.12.117+deb13-arm64 (debian-kernel@…": readable in an uncompressed image. */
function bannerVersion(data: Buffer): string | undefined {
  const marker = Buffer.from('Linux version ');
  for (let at = data.indexOf(marker); at >= 0; at = data.indexOf(marker, at + 1)) {
    const words = data.toString('latin1', at + marker.length, at + marker.length + 128).split(' ');
    if (versionPattern.test(words[0] ?? '') && words[1]?.startsWith('(')) return words[0];
  }
  return undefined;
}

/** What the image's bytes say; a gzip-compressed one is looked into. */
export function kernelImageFacts(data: Buffer): KernelImageFacts {
  if (isBzImage(data)) return { arch: 'x86_64', version: bzImageVersion(data) };
  const image = isGzip(data) ? gunzipped(data) : data;
  if (isArm64Image(image)) return { arch: 'aarch64', version: bannerVersion(image) };
  const machine = elfMachine(image);
  const arch = (Object.keys(elfMachines) as GuestArch[]).find((name) => elfMachines[name] === machine);
  return { arch, version: arch === undefined ? undefined : bannerVersion(image) };
}

function gunzipped(data: Buffer): Buffer {
  try {
    return gunzipSync(data);
  } catch {
    return Buffer.alloc(0);
  }
}

export async function readKernelImage(path: string): Promise<KernelImageFacts> {
  return kernelImageFacts(await readFile(path));
}
