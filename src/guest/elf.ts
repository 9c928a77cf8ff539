/**
 * Just enough ELF reading for the guest image: is a binary static (no PT_INTERP), which
 * libraries does it need (DT_NEEDED, for a binary of another architecture that no loader here
 * can list), and what does a kernel module's .modinfo say. 32- and 64-bit, either byte order.
 */
import { open } from 'node:fs/promises';
import { readAt } from '../fs/files.js';

interface ElfHeader {
  readonly is64: boolean;
  readonly little: boolean;
}

function header(elf: Buffer): ElfHeader | undefined {
  if (elf.length < 52 || elf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return { is64: elf[4] === 2, little: elf[5] === 1 };
}

function reader(elf: Buffer, h: ElfHeader) {
  const u16 = (at: number) => (h.little ? elf.readUInt16LE(at) : elf.readUInt16BE(at));
  const u32 = (at: number) => (h.little ? elf.readUInt32LE(at) : elf.readUInt32BE(at));
  const u64 = (at: number) => Number(h.little ? elf.readBigUInt64LE(at) : elf.readBigUInt64BE(at));
  const word = (at: number) => (h.is64 ? u64(at) : u32(at));
  return { u16, u32, word };
}

export function isElf(elf: Buffer): boolean {
  return header(elf) !== undefined;
}

/** The program interpreter (e.g. /lib64/ld-linux-x86-64.so.2), or undefined for a static binary. */
/** The program headers: type, file offset, virtual address and size in the file. */
function programHeaders(elf: Buffer): { h: ElfHeader; r: ReturnType<typeof reader>; headers: Array<{ type: number; offset: number; vaddr: number; fileSize: number }> } {
  const h = header(elf);
  if (!h) throw new Error('not an ELF file');
  const r = reader(elf, h);
  const phoff = r.word(h.is64 ? 0x20 : 0x1c);
  const phentsize = r.u16(h.is64 ? 0x36 : 0x2a);
  const phnum = r.u16(h.is64 ? 0x38 : 0x2c);
  const headers = Array.from({ length: phnum }, (_, i) => {
    const ph = phoff + i * phentsize;
    return {
      type: r.u32(ph),
      offset: r.word(ph + (h.is64 ? 0x08 : 0x04)),
      vaddr: r.word(ph + (h.is64 ? 0x10 : 0x08)),
      fileSize: r.word(ph + (h.is64 ? 0x20 : 0x10)),
    };
  });
  return { h, r, headers };
}

export function elfInterpreter(elf: Buffer): string | undefined {
  const interp = programHeaders(elf).headers.find((ph) => ph.type === 3 /* PT_INTERP */);
  if (interp === undefined) return undefined;
  return elf.subarray(interp.offset, interp.offset + interp.fileSize).toString('latin1').replace(/\0+$/, '');
}

/** Where the section header table is (e_shoff and the rest) in an ELF header. */
function sectionTable(head: Buffer) {
  const h = header(head);
  if (!h) throw new Error('not an ELF file');
  const r = reader(head, h);
  return {
    h,
    offset: r.word(h.is64 ? 0x28 : 0x20),
    entrySize: r.u16(h.is64 ? 0x3a : 0x2e),
    count: r.u16(h.is64 ? 0x3c : 0x30),
    namesIndex: r.u16(h.is64 ? 0x3e : 0x32),
  };
}

interface SectionHeader {
  readonly name: number;
  readonly offset: number;
  readonly size: number;
}

/** The section headers of a table whose entries start at `at` in `bytes`. */
function sectionHeaders(bytes: Buffer, at: number, table: ReturnType<typeof sectionTable>): SectionHeader[] {
  const r = reader(bytes, table.h);
  return Array.from({ length: table.count }, (_, i) => {
    const sh = at + i * table.entrySize;
    return { name: r.u32(sh), offset: r.word(sh + (table.h.is64 ? 0x18 : 0x10)), size: r.word(sh + (table.h.is64 ? 0x20 : 0x14)) };
  });
}

/** The header of the section named `name`, given the section names' bytes (.shstrtab). */
function findSection(headers: readonly SectionHeader[], names: Buffer, name: string): SectionHeader | undefined {
  return headers.find((s) => names.toString('latin1', s.name, names.indexOf(0, s.name)) === name);
}

/** The bytes of a named section, or undefined when the file has none. */
export function elfSection(elf: Buffer, name: string): Buffer | undefined {
  const table = sectionTable(elf);
  const headers = sectionHeaders(elf, table.offset, table);
  const names = headers[table.namesIndex];
  if (names === undefined) return undefined;
  const s = findSection(headers, elf.subarray(names.offset, names.offset + names.size), name);
  return s && elf.subarray(s.offset, s.offset + s.size);
}

/**
 * The same read from the file, a few small reads instead of the whole file: a kernel module is
 * megabytes, its .modinfo a few hundred bytes.
 */
export async function elfSectionOfFile(path: string, name: string): Promise<Buffer | undefined> {
  const file = await open(path, 'r');
  try {
    const table = sectionTable(await readAt(file, 0, 64));
    const bytes = await readAt(file, table.offset, table.count * table.entrySize);
    if (bytes.length < table.count * table.entrySize) throw new Error('ELF section table past the end of the file');
    const headers = sectionHeaders(bytes, 0, table);
    const names = headers[table.namesIndex];
    if (names === undefined) return undefined;
    const s = findSection(headers, await readAt(file, names.offset, names.size), name);
    return s && (await readAt(file, s.offset, s.size));
  } finally {
    await file.close();
  }
}

/** key=value pairs of a kernel module's .modinfo section (keys may repeat, e.g. alias). */
export function moduleInfo(ko: Buffer): Array<[string, string]> {
  return modinfoFields(elfSection(ko, '.modinfo'));
}

/** The same, read from an uncompressed .ko file. */
export async function moduleInfoOfFile(path: string): Promise<Array<[string, string]>> {
  return modinfoFields(await elfSectionOfFile(path, '.modinfo'));
}

function modinfoFields(section: Buffer | undefined): Array<[string, string]> {
  if (!section) return [];
  return section
    .toString('latin1')
    .split('\0')
    .filter((field) => field.includes('='))
    .map((field) => {
      const eq = field.indexOf('=');
      return [field.slice(0, eq), field.slice(eq + 1)];
    });
}

/** e_machine values of the architectures a guest runs. */
export const elfMachines = { x86_64: 62, aarch64: 183 } as const;

export function elfMachine(elf: Buffer): number | undefined {
  const h = header(elf);
  return h === undefined ? undefined : reader(elf, h).u16(0x12);
}

/** The DT_NEEDED sonames of a dynamically linked ELF file, in order; [] for a static one. */
export function elfNeeded(elf: Buffer): string[] {
  const { h, r, headers } = programHeaders(elf);
  const loads = headers.filter((ph) => ph.type === 1 /* PT_LOAD */).map((ph) => ({ vaddr: ph.vaddr, offset: ph.offset, size: ph.fileSize }));
  const dynamicHeader = headers.find((ph) => ph.type === 2 /* PT_DYNAMIC */);
  const dynamic = dynamicHeader === undefined ? undefined : { offset: dynamicHeader.offset, size: dynamicHeader.fileSize };
  if (dynamic === undefined) return [];
  // DT_STRTAB is an address: the PT_LOAD segment that holds it says where it is in the file.
  const fileOffset = (address: number): number => {
    const load = loads.find((l) => address >= l.vaddr && address < l.vaddr + l.size);
    if (load === undefined) throw new Error(`address 0x${address.toString(16)} is in no loaded segment`);
    return address - load.vaddr + load.offset;
  };
  const entrySize = h.is64 ? 16 : 8;
  const needed: number[] = [];
  let strtab: number | undefined;
  for (let at = dynamic.offset; at + entrySize <= dynamic.offset + dynamic.size; at += entrySize) {
    const tag = r.word(at);
    const value = r.word(at + entrySize / 2);
    if (tag === 0 /* DT_NULL */) break;
    if (tag === 1 /* DT_NEEDED */) needed.push(value);
    if (tag === 5 /* DT_STRTAB */) strtab = value;
  }
  if (needed.length === 0) return [];
  if (strtab === undefined) throw new Error('DT_NEEDED without DT_STRTAB');
  const table = fileOffset(strtab);
  return needed.map((name) => elf.toString('latin1', table + name, elf.indexOf(0, table + name)));
}
