/**
 * A cpio "newc" writer, the format the Linux kernel unpacks as an initramfs. Everything is
 * owned by root with a fixed mtime, so the same entries always give the same bytes.
 */
export type CpioEntry =
  | { readonly kind: 'dir'; readonly path: string; readonly mode: number }
  | { readonly kind: 'file'; readonly path: string; readonly mode: number; readonly data: Buffer }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string }
  | { readonly kind: 'chardev'; readonly path: string; readonly mode: number; readonly major: number; readonly minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
/** 2000-01-01: a fixed, plausible mtime (some tools warn about 0). */
export const cpioMtime = 946684800;

interface Header {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function header(h: Header): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const nameBytes = Buffer.byteLength(h.name) + 1;
  const fields = [h.ino, h.mode, 0, 0, h.nlink, cpioMtime, h.size, 0, 0, h.rdevMajor, h.rdevMinor, nameBytes, 0];
  const text = '070701' + fields.map(hex).join('');
  const out = Buffer.alloc(110 + nameBytes + pad4(110 + nameBytes));
  out.write(text, 0, 'latin1');
  out.write(h.name, 110, 'utf8');
  return out;
}

function describe(entry: CpioEntry): { mode: number; nlink: number; data: Buffer; rdev: [number, number] } {
  switch (entry.kind) {
    case 'dir':
      return { mode: S_IFDIR | (entry.mode & 0o7777), nlink: 2, data: Buffer.alloc(0), rdev: [0, 0] };
    case 'file':
      return { mode: S_IFREG | (entry.mode & 0o7777), nlink: 1, data: entry.data, rdev: [0, 0] };
    case 'symlink':
      return { mode: S_IFLNK | 0o777, nlink: 1, data: Buffer.from(entry.target), rdev: [0, 0] };
    case 'chardev':
      return { mode: S_IFCHR | (entry.mode & 0o7777), nlink: 1, data: Buffer.alloc(0), rdev: [entry.major, entry.minor] };
  }
}

/**
 * The archive's chunks, in entry order. Paths are relative ("etc/passwd"); a parent directory
 * must come before what it holds, because the kernel does not create missing parents.
 */
export function cpioChunks(entries: readonly CpioEntry[]): Buffer[] {
  const chunks: Buffer[] = [];
  const dirs = new Set<string>();
  let ino = 0;
  for (const entry of entries) {
    const path = entry.path;
    if (path === '' || path.startsWith('/') || path.split('/').some((part) => part === '' || part === '..')) {
      throw new Error(`cpio: bad path ${JSON.stringify(path)}`);
    }
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    if (parent !== '' && !dirs.has(parent)) throw new Error(`cpio: ${path} comes before its directory ${parent}`);
    if (entry.kind === 'dir') dirs.add(path);
    const { mode, nlink, data, rdev } = describe(entry);
    ino += 1;
    chunks.push(header({ ino, mode, nlink, size: data.length, rdevMajor: rdev[0], rdevMinor: rdev[1], name: path }));
    if (data.length > 0) chunks.push(data, Buffer.alloc(pad4(data.length)));
  }
  chunks.push(header({ ino: 0, mode: 0, nlink: 1, size: 0, rdevMajor: 0, rdevMinor: 0, name: 'TRAILER!!!' }));
  return chunks;
}

export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  return Buffer.concat(cpioChunks(entries));
}
