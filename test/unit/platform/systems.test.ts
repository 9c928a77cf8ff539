import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import {
  binfmtLine,
  defaultSystems,
  emulatedSystems,
  parseSystems,
  systemInfo,
  systems,
} from '../../../src/platform/systems.js';
import { UserError } from '../../../src/errors.js';

/** "\x7fELF\x02" → bytes, as binfmt_misc decodes a register line. */
function decode(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; ) {
    if (text.startsWith('\\x', i)) {
      bytes.push(Number.parseInt(text.slice(i + 2, i + 4), 16));
      i += 4;
    } else {
      bytes.push(text.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes);
}

const binfmtDir = '/usr/lib/binfmt.d';
const debianConfs = existsSync(binfmtDir) ? readdirSync(binfmtDir).filter((f) => /^qemu-.*\.conf$/.test(f)) : [];

/**
 * The first bytes of a file of an entry's architecture: its magic, then e_version 1 (EV_CURRENT),
 * which every ELF file carries and QEMU 10's mips entries check, in the file's byte order.
 */
function elfHeader(magic: Buffer): Buffer {
  const header = Buffer.alloc(Math.max(64, magic.length));
  magic.copy(header);
  if (header[5] === 2) header.writeUInt32BE(1, 20);
  else header.writeUInt32LE(1, 20);
  return header;
}

/** Whether a binfmt entry (magic, mask) matches the header bytes given; bytes past the entry match anything. */
function matches(magic: Buffer, mask: Buffer, header: Buffer): boolean {
  return magic.every((byte, i) => ((header[i] ?? 0) & (mask[i] ?? 0xff)) === (byte & (mask[i] ?? 0xff)));
}

test('the table and Debian\'s binfmt.d recognize each other\'s ELF headers, for every arch installed here', { skip: debianConfs.length === 0 && 'qemu-user-static is not installed' }, () => {
  // Not byte equality: QEMU's masks change between versions (QEMU 10 refined mips64el's and
  // checks mipsel's e_version), what counts is that both entries take the same architecture's binaries.
  let compared = 0;
  for (const info of systems) {
    const file = `${binfmtDir}/qemu-${info.qemuArch}.conf`;
    if (!existsSync(file)) continue;
    const [, , , , magic, mask, , flags] = readFileSync(file, 'utf8').trim().split(':');
    const theirs = { magic: decode(magic ?? ''), mask: decode(mask ?? '') };
    const ours = { magic: Buffer.from(info.magic, 'hex'), mask: Buffer.from(info.mask, 'hex') };
    assert.ok(matches(ours.magic, ours.mask, elfHeader(theirs.magic)), `${info.system}: our entry takes a header Debian's takes`);
    assert.ok(matches(theirs.magic, theirs.mask, elfHeader(ours.magic)), `${info.system}: Debian's entry takes a header ours takes`);
    assert.ok([...'PF'].every((flag) => (flags ?? '').includes(flag)), `${info.system}: Debian keeps argv[0] too (${flags})`);
    compared++;
  }
  assert.ok(compared >= 15, `compared ${compared} arches`);
});

test('the binfmt table takes the ELF headers of its own architecture and not those of the others', () => {
  for (const info of systems) {
    for (const other of systems) {
      if (other.qemuArch === info.qemuArch) continue;
      const header = Buffer.from(other.magic, 'hex');
      assert.ok(!matches(Buffer.from(info.magic, 'hex'), Buffer.from(info.mask, 'hex'), header), `${info.system} must not take ${other.system}`);
    }
    assert.ok(matches(Buffer.from(info.magic, 'hex'), Buffer.from(info.mask, 'hex'), Buffer.from(info.magic, 'hex')));
  }
});

test('magic and mask have the same length and the magic starts with ELF', () => {
  for (const info of systems) {
    assert.equal(info.magic.length, info.mask.length, info.system);
    assert.ok(info.magic.startsWith('7f454c46'), info.system);
  }
});

test('qemu arch names follow nixpkgs', () => {
  const expected: Record<string, string> = {
    'i686-linux': 'i386',
    'armv7l-linux': 'arm',
    'armv6l-linux': 'arm',
    'aarch64-linux': 'aarch64',
    'riscv64-linux': 'riscv64',
    'powerpc64le-linux': 'ppc64le',
    's390x-linux': 's390x',
    'mips64el-linux': 'mips64el',
    'loongarch64-linux': 'loongarch64',
  };
  for (const [system, arch] of Object.entries(expected)) assert.equal(systemInfo(system)?.qemuArch, arch, system);
});

test('--systems: known systems, deduplicated, the guest\'s own first; unknown ones list the known', () => {
  assert.deepEqual(parseSystems('aarch64-linux, x86_64-linux,aarch64-linux', 'x86_64'), ['x86_64-linux', 'aarch64-linux']);
  assert.deepEqual(defaultSystems('x86_64'), ['x86_64-linux', 'i686-linux', 'aarch64-linux']);
  for (const bad of ['', ',', 'x86_64-darwin', 'aarch64', 'linux', '$(id)']) {
    assert.throws(
      () => parseSystems(bad, 'x86_64'),
      (e: unknown) => e instanceof UserError && e.exitCode === 2 && /x86_64-linux/.test(`${e.message} ${e.hint}`),
      bad,
    );
  }
});

test('only systems the guest kernel cannot run get binfmt, one per qemu arch', () => {
  const emulated = emulatedSystems(['x86_64-linux', 'i686-linux', 'aarch64-linux', 'armv7l-linux', 'armv6l-linux'], 'x86_64');
  assert.deepEqual(emulated.map((s) => s.qemuArch), ['aarch64', 'arm']);
  const aarch64 = systemInfo('aarch64-linux');
  assert.ok(aarch64);
  assert.equal(
    binfmtLine(aarch64),
    ':qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:' +
      '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:POF',
  );
});

/** What fs/binfmt_misc.c's create_entry() makes of a register line, or the reason it answers EINVAL. */
interface Registration {
  name: string;
  offset: number;
  magic: Buffer;
  mask: Buffer;
  interpreter: string;
  flags: Set<string>;
}

/** The register file takes at most this many bytes at once (MAX_REGISTER_LENGTH). */
const maxRegisterLength = 1920;
/** BINPRM_BUF_SIZE: the bytes of a file the kernel reads to match magic (128 before Linux 5.1). */
const binprmBufSize = 128;

function parseRegistration(line: string): Registration | string {
  if (line.length < 11 || line.length > maxRegisterLength) return 'length';
  const del = line[0] ?? '';
  const fields = line.slice(1).replace(/\n$/, '').split(del);
  if (fields.length !== 7) return `${fields.length} fields, not 7`;
  const [name = '', type = '', offset = '', magic = '', mask = '', interpreter = '', flags = ''] = fields;
  if (name === '' || name === '.' || name === '..' || name.includes('/')) return `bad name ${name}`;
  if (type !== 'M') return `type ${type}: magic entries only`;
  if (!/^\d*$/.test(offset)) return `offset ${offset}`;
  const magicBytes = decode(magic);
  const maskBytes = decode(mask);
  if (magicBytes.length === 0) return 'empty magic';
  if (mask !== '' && maskBytes.length !== magicBytes.length) return 'mask and magic differ in length';
  const offsetValue = Number(offset || '0');
  if (magicBytes.length > binprmBufSize || binprmBufSize - magicBytes.length < offsetValue) return 'magic past the buffer';
  if (interpreter === '') return 'no interpreter';
  if (!/^[POCF]*$/.test(flags)) return `flags ${flags}`;
  return { name, offset: offsetValue, magic: magicBytes, mask: maskBytes, interpreter, flags: new Set(flags) };
}

test('every registration line in the table is one the kernel accepts, keeps argv[0] and opens QEMU at registration', () => {
  for (const info of systems) {
    const line = binfmtLine(info);
    const entry = parseRegistration(line);
    assert.ok(typeof entry !== 'string', `${info.system}: ${String(entry)} in ${line}`);
    assert.equal(entry.name, `qemu-${info.qemuArch}`, info.system);
    assert.equal(entry.magic.toString('hex'), info.magic, `${info.system}: the magic survives escaping`);
    assert.equal(entry.mask.toString('hex'), info.mask, `${info.system}: the mask survives escaping`);
    assert.ok(entry.magic.subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1')), info.system);
    assert.equal(entry.interpreter, `/usr/bin/qemu-${info.qemuArch}-static`, info.system);
    assert.ok(entry.interpreter.startsWith('/') && !/\s/.test(entry.interpreter), info.system);
    // P: multi-call binaries see their own name; F: QEMU is usable inside Nix's sandbox.
    for (const flag of ['P', 'F']) assert.ok(entry.flags.has(flag), `${info.system} lacks flag ${flag}`);
  }
});

test('the binfmt grammar check refuses what the kernel refuses', () => {
  const good = binfmtLine(systems[2] ?? systems[0]!);
  assert.equal(typeof parseRegistration(good), 'object');
  const bad: Record<string, string> = {
    'a flag the kernel does not know': good.replace(/:POF$/, ':PX'),
    'a name with a slash': good.replace(':qemu-aarch64:', ':qemu/aarch64:'),
    'a mask shorter than the magic': good.replace(/\\xff:\/usr/, ':/usr'),
    'no interpreter': good.replace('/usr/bin/qemu-aarch64-static', ''),
    'magic past the buffer': good.replace(':M::', ':M:120:'),
    'a field too many': `${good}:`,
  };
  for (const [what, line] of Object.entries(bad)) assert.equal(typeof parseRegistration(line), 'string', what);
});

test('the binfmt entries of any --systems register side by side: one name per qemu arch', () => {
  const lines = emulatedSystems(systems.map((s) => s.system), 'x86_64').map(binfmtLine);
  const names = lines.map((line) => line.split(':')[1]);
  assert.equal(new Set(names).size, names.length);
  assert.ok(lines.length >= 15, `${lines.length} entries`);
});
