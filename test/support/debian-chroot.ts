/**
 * A Debian chroot for the tests of another Debian release: debootstrapped from the mirror the
 * host's apt uses, made a "fresh machine" by the checkout's own scripts/setup.sh, and kept as a
 * tarball under /var/cache/linux-builder-ci, named by what went into it (suite, packages,
 * setup.sh), so later runs on the machine skip debootstrap. Each run unpacks a fresh copy.
 *
 * Every command runs in its own mount and PID namespaces (unshare), where /proc, /sys and /dev
 * are mounted into the chroot: the mounts never reach the host's table, and when the command
 * ends, or this process dies however it dies (SIGKILL too), the kernel kills everything that ran
 * in the chroot, VMs included, and the namespace goes with its mounts. Then the copy is removed —
 * on failure, on Ctrl-C, and at the start of the next run for a copy whose run was killed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const checkout = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ciCache = '/var/cache/linux-builder-ci';
const copies = join(ciCache, 'chroots');
export const officialDebianMirror = 'http://deb.debian.org/debian';
/** Where the checkout is copied inside the chroot: where every user can read it, as the tests that run the CLI as another user need. */
export const checkoutInside = '/srv/linux-builder';

export interface ChrootImage {
  readonly suite: string;
  /** Installed with apt before setup.sh runs: what the README asks of the machine (its Node.js). */
  readonly packages: readonly string[];
}

export interface CommandResult {
  readonly code: number | null;
  readonly output: string;
  readonly seconds: number;
}

export interface Chroot {
  readonly root: string;
  /** Runs a shell command in the checkout inside the chroot as root with CI=true, no stdin; output is shown and kept. */
  run(command: string, options?: { timeoutMs?: number }): Promise<CommandResult>;
}

/** The Debian mirror in the host's apt sources (one-line or deb822), or Debian's own. */
export function aptDebianMirror(): string {
  const files = ['/etc/apt/sources.list', ...listDir('/etc/apt/sources.list.d').map((name) => join('/etc/apt/sources.list.d', name))];
  for (const file of files.filter((f) => f.endsWith('.list') || f.endsWith('.sources'))) {
    const mirror = debianMirrorIn(readOrEmpty(file));
    if (mirror) return mirror;
  }
  return officialDebianMirror;
}

/** The first archive URI of Debian's main archive (…/debian, not …/debian-security) in a sources file. */
export function debianMirrorIn(text: string): string | undefined {
  const uris = [
    ...[...text.matchAll(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)].map((m) => m[1] ?? ''),
    ...[...text.matchAll(/^URIs:\s*(.+)$/gim)].flatMap((m) => (m[1] ?? '').trim().split(/\s+/)),
  ];
  return uris.map((uri) => uri.replace(/\/+$/, '')).find((uri) => /^https?:\/\/\S+\/debian$/.test(uri));
}

/** A fresh chroot of the image for body, removed afterwards whatever happens. */
export async function withChroot<T>(image: ChrootImage, log: (line: string) => void, body: (chroot: Chroot) => Promise<T>): Promise<T> {
  removeAbandonedCopies(log);
  const tarball = await imageTarball(image, log);
  const root = newCopy(image.suite);
  try {
    const started = Date.now();
    execFileSync('tar', ['-C', root, '--zstd', '-xpf', tarball]);
    log(`unpacked ${basename(tarball)} (${seconds(started)} s)`);
    prepareRun(root);
    return await body({ root, run: (command, options) => runInside(root, command, options?.timeoutMs) });
  } finally {
    removeCopy(root, log);
  }
}

/** The image's tarball: cached, or made now (debootstrap, then setup.sh inside). */
async function imageTarball(image: ChrootImage, log: (line: string) => void): Promise<string> {
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const key = createHash('sha256')
    .update(JSON.stringify({ ...image, arch }))
    .update(readFileSync(join(checkout, 'scripts', 'setup.sh')))
    .digest('hex')
    .slice(0, 16);
  const prefix = `debian-${image.suite}-${arch}-`;
  const tarball = join(ciCache, `${prefix}${key}.tar.zst`);
  if (existsSync(tarball)) {
    log(`the ${image.suite} chroot is cached: ${tarball}`);
    return tarball;
  }
  const mirror = aptDebianMirror();
  const root = newCopy(image.suite);
  try {
    let started = Date.now();
    log(`debootstrap ${image.suite} from ${mirror} (not cached yet: ${basename(tarball)})`);
    const script = existsSync(`/usr/share/debootstrap/scripts/${image.suite}`) ? [] : ['/usr/share/debootstrap/scripts/sid'];
    await runLogged('debootstrap', ['--variant=minbase', '--include=ca-certificates', image.suite, root, mirror, ...script], log);
    log(`debootstrap took ${seconds(started)} s`);
    started = Date.now();
    prepareRun(root);
    // apt rather than debootstrap --include, which cannot order the configuration of npm's many packages
    const packages = await runInside(root, `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${image.packages.join(' ')}`);
    if (packages.code !== 0) throw new Error(`installing ${image.packages.join(' ')} in the ${image.suite} chroot failed (exit ${packages.code})`);
    log(`apt-get install ${image.packages.join(' ')} took ${seconds(started)} s`);
    started = Date.now();
    // What a new user does first on a fresh machine: the README's setup, which installs the packages.
    const setup = await runInside(root, 'sh scripts/setup.sh');
    if (setup.code !== 0) throw new Error(`scripts/setup.sh failed in the ${image.suite} chroot (exit ${setup.code})`);
    log(`setup.sh in the fresh chroot took ${seconds(started)} s`);
    killProcessesIn(root);
    rmSync(join(root, checkoutInside.slice(1)), { recursive: true, force: true });
    const archives = join(root, 'var/cache/apt/archives');
    for (const deb of listDir(archives).filter((name) => name.endsWith('.deb'))) rmSync(join(archives, deb));
    started = Date.now();
    const partial = `${tarball}.partial-${process.pid}`;
    execFileSync('tar', ['-C', root, '--one-file-system', '-I', 'zstd -T0 -3', '-cf', partial, '.']);
    renameSync(partial, tarball);
    for (const old of listDir(ciCache).filter((name) => name.startsWith(prefix) && join(ciCache, name) !== tarball)) {
      rmSync(join(ciCache, old), { force: true });
    }
    log(`cached the ${image.suite} chroot as ${tarball} (${seconds(started)} s)`);
    return tarball;
  } finally {
    removeCopy(root, log);
  }
}

/** A new directory for a chroot copy, with a file naming the process that owns it. */
function newCopy(suite: string): string {
  mkdirSync(copies, { recursive: true, mode: 0o700 });
  const root = mkdtempSync(join(copies, `${suite}-`));
  chmodSync(root, 0o755); // the chroot's "/": every user may enter it
  writeFileSync(`${root}.owner`, `${process.pid}\n`);
  active.add(root);
  return root;
}

/** The files a run needs that are not part of the image: name resolution and the checkout. */
function prepareRun(root: string): void {
  cpSync('/etc/resolv.conf', join(root, 'etc/resolv.conf'), { dereference: true });
  // The machine's own trust anchors, so a TLS proxy the host trusts (for npm's registry) is trusted inside.
  if (existsSync(localAnchors)) cpSync(localAnchors, join(root, localAnchors.slice(1)), { recursive: true });
  const target = join(root, checkoutInside.slice(1));
  // The checkout's own files; node_modules and dist are made inside, for the chroot's Node.js.
  const skipped = new Set(['node_modules', 'dist', '.git'].map((name) => join(checkout, name)));
  cpSync(checkout, target, { recursive: true, filter: (source) => !skipped.has(source) });
  // What the Nix module tests evaluate against, beside the checkout as there (they skip without it).
  if (existsSync(vendorBeside)) cpSync(vendorBeside, join(root, dirname(checkoutInside).slice(1), 'shared', 'vendor'), { recursive: true });
}

const localAnchors = '/usr/local/share/ca-certificates';
const vendorBeside = join(checkout, '..', 'shared', 'vendor');
const insidePath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function runInside(root: string, command: string, timeoutMs = 30 * 60_000): Promise<CommandResult> {
  const q = shellQuoted(root);
  const mountsThenChroot = [
    'set -e',
    // The chroot's / a mount point, as a machine's is: pivot_root (virtiofsd's sandbox) needs one.
    `mount --bind ${q} ${q}`,
    `mount -t proc proc ${q}/proc`,
    `mount -t sysfs sysfs ${q}/sys`,
    `mount --rbind /dev ${q}/dev`,
    // Node.js reads its own roots unless told to add the system's, which hold the anchors copied in.
    `exec chroot ${q} /usr/bin/env -i HOME=/root PATH=${insidePath} LANG=C.UTF-8 CI=true NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt sh -c ${shellQuoted(
      `{ ! command -v update-ca-certificates >/dev/null || update-ca-certificates >/dev/null 2>&1; } && cd ${checkoutInside} && ${command}`,
    )}`,
  ].join('\n');
  return new Promise((resolve, reject) => {
    const started = Date.now();
    // Its own PID namespace, whose first process dies with unshare, which dies with this process
    // (pdeathsig): however this run ends, even by SIGKILL, everything in the chroot (detached VMs
    // too) is killed by the kernel, and the mount namespace, mounts and all, goes with it.
    const inNamespaces = ['--pdeathsig', 'KILL', '--', 'unshare', '--pid', '--fork', '--kill-child', '--mount', '--propagation', 'private'];
    const child = spawn('setpriv', [...inNamespaces, 'sh', '-c', mountsThenChroot], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const show = (chunk: Buffer): void => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', show);
    child.stderr.on('data', show);
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs / 60_000} min)\n`;
      killProcessesIn(root);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, seconds: Number(seconds(started)) });
    });
  });
}

function runLogged(command: string, args: string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (chunk: Buffer): void => {
      tail = (tail + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else {
        log(tail);
        reject(new Error(`${command} ${args.join(' ')} failed (exit ${code})`));
      }
    });
  });
}

/** Copies this process made and has not removed yet: removed on Ctrl-C or termination too. */
const active = new Set<string>();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const root of active) removeCopy(root, (line) => process.stderr.write(`${line}\n`));
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}

/** Copies whose owner is no longer running (a run that was killed): their processes, mounts and files. */
function removeAbandonedCopies(log: (line: string) => void): void {
  for (const name of listDir(copies).filter((n) => n.endsWith('.owner'))) {
    const pid = Number(readOrEmpty(join(copies, name)).trim());
    if (pid === process.pid || alive(pid)) continue;
    const root = join(copies, name.slice(0, -'.owner'.length));
    log(`removing the chroot left by an earlier run that was killed (pid ${pid}): ${root}`);
    removeCopy(root, log);
  }
}

/** Kills what runs in the copy, undoes any mount under it, then deletes it (never across a mount). */
function removeCopy(root: string, log: (line: string) => void): void {
  killProcessesIn(root);
  for (const mountPoint of mountsUnder(root).sort((a, b) => b.length - a.length)) {
    log(`unmounting ${mountPoint}`);
    try {
      execFileSync('umount', [mountPoint], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['--lazy', mountPoint], { stdio: 'ignore' });
    }
  }
  const left = mountsUnder(root);
  if (left.length > 0) throw new Error(`still mounted, so not deleted: ${left.join(', ')}`);
  execFileSync('rm', ['-rf', '--one-file-system', root]);
  rmSync(`${root}.owner`, { force: true });
  active.delete(root);
}

/** Processes whose root directory is the copy (what ran in the chroot, and the VMs it started), killed and waited for. */
function killProcessesIn(root: string): void {
  const rooted = (): number[] =>
    listDir('/proc')
      .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
      .map(Number)
      .filter((pid) => {
        try {
          return readlinkSync(`/proc/${pid}/root`) === root;
        } catch {
          return false;
        }
      });
  const deadline = Date.now() + 10_000;
  for (let pids = rooted(); pids.length > 0 && Date.now() < deadline; pids = rooted()) {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    execFileSync('sleep', ['0.2']);
  }
}

/** Mount points at or under dir in this process's mount table. */
function mountsUnder(dir: string): string[] {
  return readOrEmpty('/proc/self/mountinfo')
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const shellQuoted = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
const seconds = (since: number): string => ((Date.now() - since) / 1000).toFixed(1);
