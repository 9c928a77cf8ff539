/**
 * The guest's first userland: a statically linked busybox, because nothing else exists in the
 * initramfs before the host's /usr is mounted.
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
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

/** The applet names, for the links in the guest's /bb. */
export async function busyboxApplets(path: string): Promise<string[]> {
  const { stdout } = await run(path, ['--list']);
  return stdout.split('\n').map((name) => name.trim()).filter((name) => /^[\w.[\]-]+$/.test(name) && name !== 'busybox');
}
