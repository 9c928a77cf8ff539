/**
 * The guest's first userland: a statically linked busybox, because nothing else exists in the
 * initramfs before the host's /usr is mounted.
 */
import { execFile } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { errnoCode, failed } from '../errors.js';
import { elfInterpreter, isElf } from './elf.js';
import { hostPackages, installCommand } from '../platform/install-command.js';

const run = promisify(execFile);
const candidates = ['/bin/busybox', '/usr/bin/busybox'];
const hint = installCommand(hostPackages.busybox);

/** Enough of the file for the ELF and program headers. */
async function readHead(path: string): Promise<Buffer | undefined> {
  let file;
  try {
    file = await open(path, 'r');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/** The path of a static busybox on this host; a UserError when there is only a dynamic one or none. */
export async function findBusybox(paths: readonly string[] = candidates): Promise<string> {
  const dynamic: string[] = [];
  for (const path of paths) {
    const head = await readHead(path);
    if (!head || !isElf(head)) continue;
    if (elfInterpreter(head) === undefined) return path;
    dynamic.push(path);
  }
  if (dynamic.length > 0) {
    throw failed(`${dynamic.join(' and ')} is dynamically linked; the guest needs a static busybox`, hint);
  }
  throw failed(`no busybox found (looked at ${paths.join(', ')}); the guest needs a static busybox`, hint);
}

const appletName = (name: string): boolean => /^[\w.[\]-]+$/.test(name) && name !== 'busybox';

/**
 * The applet names, for the links in the guest's /bb: from `busybox --list`, or, for a busybox of
 * another architecture that cannot run here, from the name table inside the binary.
 */
export async function busyboxApplets(path: string): Promise<string[]> {
  const listed = await run(path, ['--list']).then(({ stdout }) => stdout, () => undefined);
  if (listed !== undefined) return listed.split('\n').map((name) => name.trim()).filter(appletName);
  const fromTable = appletsInBinary(await readFile(path));
  if (fromTable.length === 0) throw failed(`${path} cannot run here and has no applet name table`, hint);
  return fromTable;
}

/** busybox's applet_names: "[\0[[\0acpid\0…zcat\0\0", sorted, ending with an empty name. */
export function appletsInBinary(data: Buffer): string[] {
  const start = data.indexOf('[\0[[\0', 0, 'latin1');
  if (start < 0) return [];
  const end = data.indexOf('\0\0', start, 'latin1');
  if (end < 0) return [];
  return data.toString('latin1', start, end).split('\0').filter(appletName);
}
