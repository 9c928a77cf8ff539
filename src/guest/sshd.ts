/**
 * An sshd for the guest. The host's own when installed; otherwise the distribution's
 * openssh-server downloaded with the host's apt and unpacked into the cache — never installed —
 * with the library packages it depends on that the host lacks (libwrap0 in Debian 12, libwtmpdb0 in 13). Its
 * libraries are copied from the host into the initramfs: paged in over 9p they cost a cold
 * sshd start about as much again.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { errnoCode, failed } from '../errors.js';
import { elfMachine, elfMachines, elfNeeded } from './elf.js';
import { hostArch } from '../platform/host.js';
import { writingTo } from '../fs/files.js';
import { aptDownload, AptDownloadFailed, unpackDebs, type DebFile } from '../debian/download.js';
import type { Alternatives } from '../debian/packages.js';

const run = promisify(execFile);
const hostSshd = '/usr/sbin/sshd';

export interface FoundSshd {
  readonly sshd: string;
  /** Directories of libraries the host lacks (libwrap.so.0), for the guest's /opt/ssh/lib. */
  readonly libDirs: readonly string[];
  /** Split OpenSSH (9.8+) helpers beside sshd: guest file name → host path. */
  readonly helpers: Readonly<Record<string, string>>;
  /** OpenSSH 9.8+ always execs sshd-session per connection and has no -r. */
  readonly split: boolean;
  /** Where it came from, for log lines: "host" or the package version. */
  readonly source: string;
  /**
   * The dynamic loader that lists the libraries, for an sshd of another userland than the
   * host's (the host's ldd would mix the host's loader with that userland's libc); absent: ldd.
   */
  readonly loader?: string;
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/**
 * The sshd_config lines that depend on the sshd's version, for the guest's sshd whose helpers
 * sit in sshDir. OpenSSH 9.8 split off sshd-session and began refusing, for a while, an address
 * whose connections ended before logging in (PerSourcePenalties): behind QEMU's NAT every client
 * (the host's Nix, the agent, the readiness probes that read the banner and hang up) is the one
 * address 10.0.2.2, so the host would lock itself out, mostly when a slow boot made many probes.
 */
export function sshdVersionConfig(sshd: FoundSshd, sshDir: string): string[] {
  return [
    ...Object.keys(sshd.helpers).map((name) => `${name === 'sshd-auth' ? 'SshdAuthPath' : 'SshdSessionPath'} ${sshDir}/${name}`),
    ...(sshd.split ? ['PerSourcePenalties no'] : []),
  ];
}

/** A complete unpacked tree: only renamed into place once extracted, so existing means whole. */
export async function fromTree(root: string, source: string): Promise<FoundSshd | undefined> {
  const sshd = join(root, 'usr/sbin/sshd');
  if (!(await exists(sshd))) return undefined;
  const libDirs: string[] = [];
  for (const dir of ['lib', 'usr/lib']) {
    for (const name of await readdir(join(root, dir)).catch(() => [] as string[])) {
      if (name.endsWith('-linux-gnu')) libDirs.push(join(root, dir, name));
    }
  }
  const helpers: Record<string, string> = {};
  for (const name of ['sshd-session', 'sshd-auth']) {
    const path = join(root, 'usr/lib/openssh', name);
    if (await exists(path)) helpers[name] = path;
  }
  return { sshd, libDirs, helpers, split: Object.keys(helpers).length > 0, source };
}

/** The sshd the guest runs: the host's, a cached download, or a fresh download. */
export async function findSshd(options: { cacheDir: string; log: (line: string) => void }): Promise<FoundSshd> {
  if (await exists(hostSshd)) {
    // the guest finds a split sshd's helpers at their usual path through the /usr share
    const split = await exists('/usr/lib/openssh/sshd-session');
    return { sshd: hostSshd, libDirs: [], helpers: {}, split, source: 'host' };
  }
  const sshdCache = join(options.cacheDir, 'sshd');
  const versions = (await readdir(sshdCache).catch(() => [] as string[])).filter((name) => !name.startsWith('.')).sort();
  for (const version of versions.reverse()) {
    const found = await fromTree(join(sshdCache, version), version);
    // a tree unpacked before its missing libraries were fetched is downloaded again
    if (found && (await missingLibraries(found)).length === 0) return found;
  }
  return await writingTo(sshdCache, () => downloadSshd(sshdCache, options.log), { what: 'downloading and unpacking openssh-server into sshd/' });
}

async function downloadSshd(sshdCache: string, log: (line: string) => void): Promise<FoundSshd> {
  await mkdir(sshdCache, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(join(sshdCache, '.download-'));
  try {
    log('downloading openssh-server for the guest (apt-get download; nothing is installed)');
    const [server] = await apt(['openssh-server'], join(work, 'server'));
    if (server === undefined) throw failed('apt-get download did not produce an openssh-server package', aptHint);
    const root = join(work, 'root');
    await unpackDebs([server.path], root);
    await addMissingLibraries(root, server, work, log);
    const target = join(sshdCache, server.version.replace(/[^\w.+-]/g, '_'));
    try {
      await rename(root, target);
    } catch (error) {
      // another start won the race; its tree is as good as ours
      if (errnoCode(error) !== 'ENOTEMPTY' && errnoCode(error) !== 'EEXIST') throw error;
    }
    log(`sshd ${server.version} unpacked into the cache`);
    const found = await fromTree(target, server.version);
    if (!found) throw failed(`openssh-server ${server.version} has no usr/sbin/sshd`);
    await sshdLibraries(found);
    return found;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Until ldd finds every library sshd and its helpers load: the library packages (lib*) the
 * unpacked packages depend on and the host has not installed, downloaded and unpacked into the
 * same tree — so the libraries come from what the package declares, not from a guessed list.
 */
async function addMissingLibraries(root: string, server: DebFile, work: string, log: (line: string) => void): Promise<void> {
  const considered = new Set<string>();
  let unpacked = [server];
  for (let round = 1; ; round++) {
    const tree = await fromTree(root, 'download');
    const missing = tree ? await missingLibraries(tree) : [];
    if (missing.length === 0) return;
    const wanted: string[] = [];
    for (const deb of unpacked) {
      for (const name of libraryDepends(deb.depends)) {
        if (considered.has(name)) continue;
        considered.add(name);
        if (!(await installedOnHost(name))) wanted.push(name);
      }
    }
    // nothing more to fetch: sshdLibraries names what is still missing
    if (wanted.length === 0) return;
    log(`sshd needs ${missing.join(', ')}, which the host lacks; downloading ${wanted.join(', ')}`);
    unpacked = await apt(wanted, join(work, `libraries-${round}`));
    await unpackDebs(unpacked.map((deb) => deb.path), root);
  }
}

/** The shared-library packages (lib*) of a package's dependencies: the first of each set of alternatives. */
export function libraryDepends(depends: readonly Alternatives[]): string[] {
  const names = depends.map((alternatives) => alternatives[0]?.name ?? '').filter((name) => name.startsWith('lib'));
  return [...new Set(names)];
}

async function installedOnHost(name: string): Promise<boolean> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f', '${db:Status-Status}', name]);
    return stdout.trim() === 'installed';
  } catch {
    return false;
  }
}

const aptHint = 'run "apt-get update" and retry, or install openssh-server on the host';

async function apt(names: string[], dir: string): Promise<DebFile[]> {
  try {
    return await aptDownload(names, dir);
  } catch (error) {
    if (!(error instanceof AptDownloadFailed)) throw error;
    throw failed(`apt-get download ${names.join(' ')} failed: ${error.detail}`, aptHint, error);
  }
}

/**
 * The shared libraries sshd and its helpers load, as ldd resolves them on this host: file name
 * in the guest's /opt/ssh/lib → host file. The dynamic loader is left out: the kernel loads it
 * from the path in the binary, which is on the /usr share. Fails naming every missing library.
 */
export async function sshdLibraries(found: FoundSshd): Promise<Map<string, string>> {
  if (found.loader !== undefined && !(await runsHere(found.sshd))) return librariesByNeeded(found);
  const libraries = new Map<string, string>();
  for (const binary of binaries(found)) {
    const { resolved, missing } = await lddOf(binary, found);
    if (missing.length > 0) {
      throw failed(
        `${binary} needs libraries this host does not have: ${missing.join(', ')}`,
        'install the packages that provide them, or install openssh-server on the host',
      );
    }
    for (const [name, path] of resolved) libraries.set(name, path);
  }
  return libraries;
}

/** The libraries ldd cannot find for sshd or its helpers, by file name. */
async function missingLibraries(found: FoundSshd): Promise<string[]> {
  const missing = new Set<string>();
  for (const binary of binaries(found)) for (const name of (await lddOf(binary, found)).missing) missing.add(name);
  return [...missing];
}

const binaries = (found: FoundSshd): string[] => [found.sshd, ...Object.values(found.helpers)];

/** The libraries a binary needs, by ldd, or by the userland's own loader (`--list`) when it has one. */
async function lddOf(binary: string, found: FoundSshd): Promise<{ resolved: Map<string, string>; missing: string[] }> {
  const env = { ...process.env, LD_LIBRARY_PATH: found.libDirs.join(':') };
  let stdout: string;
  try {
    ({ stdout } = found.loader === undefined
      ? await run('ldd', [binary], { env })
      : await run(found.loader, ['--library-path', found.libDirs.join(':'), '--list', binary]));
  } catch (error) {
    throw failed(`cannot list the libraries of ${binary} with ${found.loader ?? 'ldd'}`, found.loader === undefined ? 'install libc-bin' : 'the Debian packages may be damaged: remove them from the cache and start again', error);
  }
  const resolved = new Map<string, string>();
  const missing: string[] = [];
  for (const line of stdout.split('\n')) {
    const match = /^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
    if (!match) continue;
    const [, name = '', path = ''] = match;
    if (path === 'not found') missing.push(name);
    else if (!basename(name).startsWith('ld-linux')) resolved.set(name, path);
  }
  return { resolved, missing };
}

/** True when the binary is of the host's architecture, so its loader can list its libraries here. */
async function runsHere(binary: string): Promise<boolean> {
  return elfMachine(await readFile(binary)) === elfMachines[hostArch()];
}

/**
 * sshd of another architecture (an aarch64 guest on an x86_64 host): its loader cannot run here,
 * so the libraries are found as that loader would, by DT_NEEDED through the userland's library
 * directories, recursively. Fails naming every missing library.
 */
async function librariesByNeeded(found: FoundSshd): Promise<Map<string, string>> {
  const libraries = new Map<string, string>();
  const missing = new Set<string>();
  const queue = [found.sshd, ...Object.values(found.helpers)];
  for (let binary = queue.shift(); binary !== undefined; binary = queue.shift()) {
    for (const name of elfNeeded(await readFile(binary))) {
      if (libraries.has(name) || basename(name).startsWith('ld-linux')) continue;
      const path = await firstExisting(found.libDirs.map((dir) => join(dir, name)));
      if (path === undefined) {
        missing.add(name);
        continue;
      }
      libraries.set(name, path);
      queue.push(path);
    }
  }
  if (missing.size > 0) {
    throw failed(`${found.sshd} needs libraries its packages do not have: ${[...missing].join(', ')}`, 'the Debian packages may be damaged: remove them from the cache and start again');
  }
  return libraries;
}

async function firstExisting(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) if (await exists(path)) return path;
  return undefined;
}
