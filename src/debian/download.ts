/**
 * How a Debian package comes onto this machine, and how it is opened, in one place. Two ways to
 * download: the host's apt (`apt-get download`, for the host userland: the kernel and sshd of
 * the host's own distribution, which apt checks against its signed lists), and the product's own
 * fetcher from a mirror (for the debian userland: checked against the SHA256 and size of the
 * signed index). Either way the .deb is read here, without dpkg: its control fields, its files.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { debControl, unpackDeb, UnpackTarget } from './deb.js';
import { downloadVerified } from './fetch.js';
import { parseRelations, type Alternatives, type PackageEntry } from './packages.js';

export interface CommandResult {
  /** null when the command could not be started (e.g. not installed). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** How commands run: the seam tests use to stand in for apt. */
export type CommandRunner = (command: string, args: readonly string[], cwd?: string) => Promise<CommandResult>;

export function runCommand(command: string, args: readonly string[], cwd?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60 * 1000 }, (error, stdout, stderr) => {
      if (error === null) return resolve({ code: 0, stdout, stderr });
      const code = typeof error.code === 'number' ? error.code : null;
      resolve({ code: code ?? (error.code === 'ENOENT' ? null : 1), stdout, stderr: stderr || error.message });
    });
  });
}

/** A .deb on disk, with what its control file says. */
export interface DebFile {
  readonly path: string;
  readonly name: string;
  readonly version: string;
  /** Pre-Depends, then Depends. */
  readonly depends: readonly Alternatives[];
}

export async function readDeb(path: string): Promise<DebFile> {
  const control = await debControl(path);
  return {
    path,
    name: control.get('Package') ?? '',
    version: control.get('Version') ?? '',
    depends: [...parseRelations(control.get('Pre-Depends')), ...parseRelations(control.get('Depends'))],
  };
}

/** apt-get download failed; the caller says what that means for its user. */
export class AptDownloadFailed extends Error {
  constructor(
    /** no-apt: apt-get is not installed; unknown: apt's lists have no such package; failed: anything else. */
    readonly kind: 'no-apt' | 'unknown' | 'failed',
    /** apt's last line of complaint. */
    readonly detail: string,
    /** All apt said: a full disk is recognized from it. */
    readonly stderr: string,
  ) {
    super(`apt-get download failed: ${detail}`);
  }
}

/**
 * The host's apt downloads the packages (a name may carry ":<arch>") into dir, which must hold
 * no other .deb; nothing is installed. Returns them read, in the order apt wrote them.
 */
export async function aptDownload(names: readonly string[], dir: string, run: CommandRunner = runCommand): Promise<DebFile[]> {
  await mkdir(dir, { recursive: true });
  const result = await run('apt-get', ['-q', 'download', ...names], dir);
  // the last error line: apt also warns on success (e.g. that root downloads unsandboxed)
  const lines = result.stderr.trim().split('\n').map((line) => line.trim()).filter(Boolean);
  const detail = lines.filter((line) => line.startsWith('E:')).pop() ?? lines.pop() ?? `apt-get exited with ${result.code}`;
  if (result.code === null) throw new AptDownloadFailed('no-apt', detail, result.stderr);
  const debs = (await readdir(dir)).filter((name) => name.endsWith('.deb')).sort();
  if (result.code !== 0 || debs.length < names.length) {
    const unknown = /Unable to locate package|has no installation candidate|Can't select (candidate )?version/.test(result.stderr);
    throw new AptDownloadFailed(unknown ? 'unknown' : 'failed', detail, result.stderr);
  }
  return Promise.all(debs.map((name) => readDeb(join(dir, name))));
}

/** The product's fetcher: one package of a signed index, from the mirror to dest, checked against the index. */
export async function mirrorDownload(mirror: string, entry: PackageEntry, dest: string, onBytes?: (bytes: number) => void): Promise<void> {
  await downloadVerified(`${mirror}/${entry.filename}`, dest, entry, `${entry.name} ${entry.version}`, onBytes);
}

/** Unpacks the .debs' files into root one after another, as dpkg -x would, then gives directories their packaged modes. */
export async function unpackDebs(debs: readonly string[], root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  const target = new UnpackTarget(root);
  for (const deb of debs) await unpackDeb(deb, target);
  await target.finish();
}
