/** Test helpers: a tiny newc reader to check our writer, and synthetic ELF files. */
export interface ReadEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

/** Parses a newc archive up to TRAILER!!!, checking magic and 4-byte alignment. */
export function readNewc(archive: Buffer): ReadEntry[] {
  const entries: ReadEntry[] = [];
  let at = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    if (archive.toString('latin1', at, at + 6) !== '070701') throw new Error(`bad magic at ${at}`);
    const field = (i: number) => parseInt(archive.toString('latin1', at + 6 + i * 8, at + 14 + i * 8), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = archive.toString('utf8', at + 110, at + 110 + nameSize - 1);
    if (archive[at + 110 + nameSize - 1] !== 0) throw new Error(`name of ${name} not NUL-terminated`);
    const dataAt = align(at + 110 + nameSize);
    if (name === 'TRAILER!!!') return entries;
    entries.push({
      name,
      mode: field(1),
      uid: field(2),
      gid: field(3),
      nlink: field(4),
      mtime: field(5),
      rdevMajor: field(9),
      rdevMinor: field(10),
      data: archive.subarray(dataAt, dataAt + size),
    });
    at = align(dataAt + size);
  }
}

/**
 * A minimal little-endian ELF64: optionally a PT_INTERP program header, optionally a .modinfo
 * section (the fields joined with NULs), enough for what src/guest/elf.ts reads.
 */
export function syntheticElf(options: { interp?: string; modinfo?: string[] }): Buffer {
  const interp = options.interp === undefined ? undefined : Buffer.from(`${options.interp}\0`);
  const modinfo = Buffer.from((options.modinfo ?? []).map((f) => `${f}\0`).join(''));
  const names = Buffer.from('\0.modinfo\0.shstrtab\0');
  const phnum = interp ? 1 : 0;
  const phoff = 64;
  let at = phoff + phnum * 56;
  const interpAt = at;
  at += interp?.length ?? 0;
  const modinfoAt = at;
  at += modinfo.length;
  const namesAt = at;
  at += names.length;
  const shoff = (at + 7) & ~7;
  const shnum = 3;
  const elf = Buffer.alloc(shoff + shnum * 64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // 64-bit
  elf[5] = 1; // little-endian
  elf[6] = 1;
  elf.writeUInt16LE(1, 0x10); // ET_REL, like a .ko
  elf.writeUInt16LE(62, 0x12);
  elf.writeBigUInt64LE(BigInt(phnum ? phoff : 0), 0x20);
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x34);
  elf.writeUInt16LE(56, 0x36);
  elf.writeUInt16LE(phnum, 0x38);
  elf.writeUInt16LE(64, 0x3a);
  elf.writeUInt16LE(shnum, 0x3c);
  elf.writeUInt16LE(2, 0x3e);
  if (interp) {
    elf.writeUInt32LE(3, phoff);
    elf.writeBigUInt64LE(BigInt(interpAt), phoff + 0x08);
    elf.writeBigUInt64LE(BigInt(interp.length), phoff + 0x20);
    interp.copy(elf, interpAt);
  }
  modinfo.copy(elf, modinfoAt);
  names.copy(elf, namesAt);
  const section = (i: number, name: number, offset: number, size: number) => {
    const sh = shoff + i * 64;
    elf.writeUInt32LE(name, sh);
    elf.writeUInt32LE(i === 2 ? 3 : 1, sh + 4);
    elf.writeBigUInt64LE(BigInt(offset), sh + 0x18);
    elf.writeBigUInt64LE(BigInt(size), sh + 0x20);
  };
  section(1, 1, modinfoAt, modinfo.length);
  section(2, 10, namesAt, names.length);
  return elf;
}
