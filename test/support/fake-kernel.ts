/**
 * A tiny ELF64 "kernel" for tests: one loadable page whose code halts forever, and
 * optionally Xen's PHYS32_ENTRY note, so QEMU can enter it through PVH.
 */
export const fakeKernelEntry = 0x100000;

export function fakeVmlinux(options: { pvhNote: boolean }): Buffer {
  const elf = Buffer.alloc(0x1010);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // ELFCLASS64
  elf[5] = 1; // little-endian
  elf[6] = 1;
  elf.writeUInt16LE(2, 0x10); // ET_EXEC
  elf.writeUInt16LE(0x3e, 0x12); // x86-64
  elf.writeUInt32LE(1, 0x14);
  elf.writeBigUInt64LE(BigInt(fakeKernelEntry), 0x18);
  elf.writeBigUInt64LE(64n, 0x20); // e_phoff
  elf.writeUInt16LE(64, 0x34);
  elf.writeUInt16LE(56, 0x36);
  elf.writeUInt16LE(2, 0x38); // e_phnum
  elf.writeUInt16LE(64, 0x3a);

  const load = 64;
  elf.writeUInt32LE(1, load); // PT_LOAD
  elf.writeUInt32LE(5, load + 4);
  elf.writeBigUInt64LE(0x1000n, load + 0x08);
  elf.writeBigUInt64LE(BigInt(fakeKernelEntry), load + 0x10);
  elf.writeBigUInt64LE(BigInt(fakeKernelEntry), load + 0x18);
  elf.writeBigUInt64LE(16n, load + 0x20);
  elf.writeBigUInt64LE(16n, load + 0x28);
  elf.writeBigUInt64LE(0x1000n, load + 0x30);

  // Two notes: an unrelated GNU one first, so the walk has to skip it.
  const notes = Buffer.concat([note('GNU', 3, Buffer.from('abcdefgh')), note('Xen', options.pvhNote ? 18 : 17, u32(fakeKernelEntry))]);
  const phNote = load + 56;
  elf.writeUInt32LE(4, phNote); // PT_NOTE
  elf.writeUInt32LE(4, phNote + 4);
  elf.writeBigUInt64LE(0x200n, phNote + 0x08);
  elf.writeBigUInt64LE(BigInt(notes.length), phNote + 0x20);
  elf.writeBigUInt64LE(BigInt(notes.length), phNote + 0x28);
  elf.writeBigUInt64LE(4n, phNote + 0x30);
  notes.copy(elf, 0x200);

  Buffer.from([0xf4, 0xeb, 0xfd]).copy(elf, 0x1000); // hlt; jmp back to hlt
  return elf;
}

function note(name: string, type: number, desc: Buffer): Buffer {
  const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const nameBytes = Buffer.from(`${name}\0`, 'latin1');
  return Buffer.concat([u32(nameBytes.length), u32(desc.length), u32(type), pad(nameBytes), pad(desc)]);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

/** A bzImage-shaped file: a setup header pointing at a compressed payload, then trailing bytes. */
export function fakeBzImage(payload: Buffer, version = '6.1.0-99-amd64'): Buffer {
  const setupSectors = 3;
  const setup = Buffer.alloc((setupSectors + 1) * 512);
  setup[0x1f1] = setupSectors;
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(0x20f, 0x206);
  const versionAt = 0x400;
  setup.writeUInt16LE(versionAt - 0x200, 0x20e);
  setup.write(`${version} (test@example) #1 SMP\0`, versionAt, 'latin1');
  const decompressorStub = Buffer.alloc(256, 0x90);
  setup.writeUInt32LE(decompressorStub.length, 0x248); // payload_offset
  setup.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([setup, decompressorStub, payload, Buffer.alloc(64, 0xcc)]);
}
