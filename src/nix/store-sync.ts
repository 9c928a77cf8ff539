/**
 * Zero-copy inputs: the guest already sees the host's store through the read-only share, but its
 * Nix database does not know those paths, so Nix would copy them over SSH. This registers the
 * host's valid paths in the guest's database (nix-store --dump-db | nix-store --load-db), at boot
 * (those its database, kept on the disk, does not hold from an earlier boot) and again for paths
 * the host gained since. Only paths valid on the host are registered: a path still being written
 * is not valid yet and waits for the next sync. Paths the guest holds in its own layer (outputs it
 * built, copied back) are not registered at all.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { readdir } from 'node:fs/promises';
import { guestPaths } from '../guest/init.js';

const storeDir = '/nix/store';

function run(command: string, args: string[], input?: NodeJS.ReadableStream): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (input && child.stdin) {
      // A command that exits without reading all of its input: its exit code says what happened,
      // and an unhandled EPIPE would take the whole process (the agent) down.
      child.stdin.on('error', () => {});
      input.pipe(child.stdin);
    }
  });
}

/** Store entries that could be paths: no locks, no .links, no .drv (builds never need them remotely). */
export function candidatePaths(names: readonly string[]): string[] {
  return names
    .filter((name) => /^[0-9a-z]{32}-/.test(name) && !name.endsWith('.lock') && !name.endsWith('.drv') && !name.endsWith('.chroot'))
    .map((name) => `${storeDir}/${name}`);
}

/**
 * This user's nix-store cannot open the host's store: a single-user store owned by someone else,
 * with no nix-daemon. Nothing to retry: registration stays off for this StoreSync's life.
 */
export class HostStoreUnreadable extends Error {}

/** What a failed nix-store said, as one error: HostStoreUnreadable when it was denied access. */
export function nixStoreFailure(command: string, stderr: string): Error {
  const said = stderr.trim().split('\n').pop()?.replace(/^error: /, '') ?? '';
  if (/Permission denied|Operation not permitted/.test(stderr)) {
    return new HostStoreUnreadable(`this user cannot open the host's Nix store (${command}: ${said})`);
  }
  return new Error(`${command} failed on the host${said ? `: ${said}` : ''}`);
}

async function validOnHost(paths: readonly string[]): Promise<string[]> {
  const invalid = new Set<string>();
  for (let i = 0; i < paths.length; i += 2000) {
    const chunk = paths.slice(i, i + 2000);
    const result = await run('nix-store', ['--check-validity', '--print-invalid', ...chunk]);
    if (result.code !== 0) throw nixStoreFailure('nix-store --check-validity', result.stderr);
    for (const line of result.stdout.split('\n')) if (line !== '') invalid.add(line);
  }
  return paths.filter((p) => !invalid.has(p));
}

export interface SyncResult {
  readonly registered: number;
  readonly seconds: number;
  /** Of those, how many the guest already held in its own layer (outputs it built, copied back). */
  readonly inGuest: number;
}

/**
 * Paths at most this many are first asked about through the guest's long-lived shell: a sync
 * between builds (the last build's outputs) is a handful, the boot's first is thousands.
 */
export const askGuestMaxPaths = 64;

/**
 * Runs in the guest for the agent's life with the VM, reading one line of store names at a time
 * and answering one line: `.` and the names that are not in the guest's own layer (the same test
 * as guestRegisterCommand's), each after a space. Asking costs a few milliseconds of the guest's shell,
 * where a command of its own costs an SSH session and a shell started under emulation (0.2 s).
 * Globbing is off: a name may hold `?`.
 */
export function guestOwnLayerLoop(): string {
  return [
    'set -f',
    `cd ${guestPaths.rwStore}/upper || exit 1`,
    'while read -r names; do out=.; for p in $names; do if { [ ! -e "$p" ] && [ ! -L "$p" ]; } || [ -c "$p" ]; then out="$out $p"; fi; done; echo "$out"; done',
  ].join('; ');
}

/** How long one answer may take before the shell is given up for this guest's sync. */
const askTimeoutMs = 3_000;

/**
 * The agent's side of guestOwnLayerLoop: one ssh command (over the shared connection), asked
 * in turn. Any failure (the session ends, an answer is late or garbled) answers `undefined`:
 * the caller then registers the usual way, which is always right.
 */
class GuestOwnLayer {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly waiting: Array<(lacking: Set<string> | undefined) => void> = [];
  private received = '';
  private ended = false;

  constructor(
    sshArgv: readonly string[],
    /** Called once when the shell ends on its own (it could not start, died, was late or garbled). */
    private readonly onFailure: () => void,
  ) {
    const [command, ...args] = sshArgv;
    this.child = spawn(command ?? 'ssh', [...args, guestOwnLayerLoop()], { stdio: ['pipe', 'pipe', 'ignore'] });
    // Between questions it must not keep a process alive that is otherwise done.
    this.hold(false);
    this.child.on('error', () => this.end());
    this.child.on('close', () => this.end());
    this.child.stdin.on('error', () => this.end());
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.received += chunk.toString();
      let newline: number;
      while ((newline = this.received.indexOf('\n')) >= 0) {
        const line = this.received.slice(0, newline);
        this.received = this.received.slice(newline + 1);
        const answer = line.startsWith('.') ? new Set(line.split(' ').slice(1)) : undefined;
        this.waiting.shift()?.(answer);
        if (answer === undefined) this.end();
        else if (this.waiting.length === 0) this.hold(false);
      }
    });
  }

  get alive(): boolean {
    return !this.ended;
  }

  /** The names of the paths not in the guest's own layer; undefined when the shell could not say. */
  ask(paths: readonly string[]): Promise<Set<string> | undefined> {
    if (this.ended) return Promise.resolve(undefined);
    this.hold(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.end(), askTimeoutMs);
      this.waiting.push((lacking) => {
        clearTimeout(timer);
        resolve(lacking);
      });
      this.child.stdin.write(`${paths.map(storeName).join(' ')}\n`);
    });
  }

  /** Whether the shell keeps the event loop alive: only while an answer is awaited. */
  private hold(waiting: boolean): void {
    for (const handle of [this.child, this.child.stdout as unknown as Socket]) {
      if (waiting) handle.ref();
      else handle.unref();
    }
  }

  /** Ends the shell; failure says it was not asked to end. */
  end(failure = true): void {
    if (this.ended) return;
    this.ended = true;
    this.child.stdin.destroy();
    this.child.kill();
    if (failure) this.onFailure();
    for (const answer of this.waiting.splice(0)) answer(undefined);
  }
}

/** Keeps one guest's database in step with the host store. */
export class StoreSync {
  private readonly registered = new Set<string>();
  private running: Promise<SyncResult> | undefined;
  /** Set once this user turned out unable to read the host store; later syncs do nothing. */
  private unreadable: HostStoreUnreadable | undefined;
  private next: Promise<SyncResult> | undefined;
  /** Bumped by forget(): a run begun before it must not mark its paths as known to a new guest. */
  private generation = 0;
  /** Whether this generation's first run has read what the guest's disk already holds. */
  private seeded = false;
  /** The guest's long-lived shell (keepGuestShell), started again by a run when it ended. */
  private ownLayer: GuestOwnLayer | undefined;
  /** Shells that failed this generation: after a few, every sync registers the usual way. */
  private ownLayerFailures = 0;

  constructor(
    /** argv of a command that runs its last argument in the guest over SSH, e.g. ['ssh', '-F', cfg, alias]. */
    private readonly sshArgv: readonly string[],
    /** Called once per run that registered paths, however many callers share it. */
    private readonly onRegistered: (result: SyncResult) => void = () => {},
    /**
     * Keep a long-lived guest shell to ask before registering a few paths (the agent, which
     * syncs between builds); it starts with the first run, while the boot's registration loads.
     */
    private readonly keepGuestShell = false,
  ) {}

  /** Host paths that exist and are not registered yet (cheap: one readdir). */
  async pending(): Promise<string[]> {
    const names = await readdir(storeDir).catch(() => [] as string[]);
    return candidatePaths(names).filter((p) => !this.registered.has(p));
  }

  /**
   * Registers every valid host path that exists now. A run under way may have read the store
   * before the caller's paths appeared: callers that arrive during a run share the next one.
   */
  sync(): Promise<SyncResult> {
    if (!this.running) return this.begin();
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.begin();
      });
    return this.next;
  }

  /** Resolves once no run is under way or waiting (whether they succeeded or not). */
  async settled(): Promise<void> {
    while (this.running || this.next) await (this.next ?? this.running)?.catch(() => undefined);
  }

  /** After a reboot the guest's database may be empty again. */
  forget(): void {
    this.generation++;
    this.registered.clear();
    this.seeded = false;
    this.close();
    this.ownLayerFailures = 0;
  }

  /** Ends the guest shell this sync keeps, if any (the VM stops, the agent exits). */
  close(): void {
    this.ownLayer?.end(false);
    this.ownLayer = undefined;
  }

  private begin(): Promise<SyncResult> {
    const run = this.syncOnce().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private async syncOnce(): Promise<SyncResult> {
    if (this.unreadable) return { registered: 0, seconds: 0, inGuest: 0 };
    try {
      return await this.registerNew();
    } catch (error) {
      // Said once (start's warning, or the agent's first error event); retrying cannot help.
      if (error instanceof HostStoreUnreadable) this.unreadable = error;
      throw error;
    }
  }

  private async registerNew(): Promise<SyncResult> {
    const t0 = Date.now();
    const generation = this.generation;
    if (this.keepGuestShell && !this.ownLayer?.alive && this.ownLayerFailures < 3) {
      this.ownLayer = new GuestOwnLayer(this.sshArgv, () => {
        if (generation === this.generation) this.ownLayerFailures++;
      });
    }
    if (!this.seeded) {
      this.seeded = true;
      await this.seedFromGuest(generation);
    }
    const pending = await this.pending();
    // Paths the guest holds need no check on the host either: nothing is registered, so one
    // the host is still writing (an output being copied back) cannot be registered half-written.
    const lacking = await this.guestLacks(pending);
    const held: string[] = [];
    const rest: string[] = [];
    for (const path of pending) (lacking && !lacking.has(storeName(path)) ? held : rest).push(path);
    if (generation === this.generation) for (const path of held) this.registered.add(path);
    const fresh = rest.length === 0 ? [] : await validOnHost(rest);
    for (const chunk of registrationChunks(fresh)) await this.register(chunk, generation);
    const known = held.length + fresh.length;
    const inGuest = held.length;
    const result = { registered: known, seconds: known === 0 ? 0 : (Date.now() - t0) / 1000, inGuest };
    if (result.registered > 0) this.onRegistered(result);
    return result;
  }

  /**
   * Takes the paths the guest's database holds from an earlier boot as registered: a boot then
   * registers only what the host gained since, not the whole store again (thousands of paths, 3 ms
   * each under TCG). A guest that cannot say (no disk, an old database, ssh failed) is told
   * everything, as before.
   */
  private async seedFromGuest(generation: number): Promise<void> {
    const [command, ...args] = this.sshArgv;
    const listed = await run(command ?? 'ssh', [...args, guestKnownCommand()]).catch(() => undefined);
    if (!listed || listed.code !== 0 || generation !== this.generation) return;
    for (const path of candidatePaths(listed.stdout.split('\n'))) this.registered.add(path);
  }

  /**
   * Which of the paths (by name) are not in the guest's own layer, asked through its long-lived
   * shell; undefined when there is no shell or it cannot say (the caller then registers them all
   * the usual way). Only after the boot's first registration, and only for a few paths.
   */
  private async guestLacks(paths: readonly string[]): Promise<Set<string> | undefined> {
    if (!this.ownLayer || paths.length === 0 || paths.length > askGuestMaxPaths || this.registered.size === 0) return undefined;
    return this.ownLayer.ask(paths);
  }

  private async register(paths: readonly string[], generation: number): Promise<void> {
    const dump = spawn('nix-store', ['--dump-db', ...paths], { stdio: ['ignore', 'pipe', 'pipe'] });
    let dumpErrors = '';
    dump.stderr.on('data', (chunk: Buffer) => (dumpErrors += chunk.toString()));
    const dumped = new Promise<number | null>((resolve) => dump.on('close', resolve));
    const [command, ...args] = this.sshArgv;
    const load = await run(command ?? 'ssh', [...args, guestRegisterCommand(paths)], dump.stdout).catch((error: Error) => ({ code: null, stdout: '', stderr: error.message }));
    // A guest command that failed (or never started) may not have read the whole dump, which
    // would then wait on a full pipe for ever.
    const abandoned = load.code !== 0;
    if (abandoned) dump.kill();
    const dumpCode = await dumped;
    if (dumpCode !== 0 && !(abandoned && dumpCode === null)) throw nixStoreFailure('nix-store --dump-db', dumpErrors);
    if (abandoned) {
      const said = load.stderr.trim().split('\n').pop() ?? '';
      throw new Error(`registering host paths in the guest failed${load.code === null ? '' : ` (exit ${load.code})`}: ${said}`);
    }
    if (generation === this.generation) for (const path of paths) this.registered.add(path);
  }
}

/**
 * The guest command is one argument to ssh and to the guest's shell: Linux refuses any single
 * argument over 128 KiB (spawn E2BIG), whatever ARG_MAX says.
 */
export const maxGuestCommandBytes = 100 * 1024;

/** Splits paths, in order, so each chunk's guest command fits in maxGuestCommandBytes. */
export function registrationChunks(paths: readonly string[]): string[][] {
  const fixed = Buffer.byteLength(guestRegisterCommand([]));
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let bytes = fixed;
  for (const path of paths) {
    // Each path appears three times in the command (the guest's own, rooted, its whiteout), quoted.
    const cost = 3 * (Buffer.byteLength(path) + 3);
    if (chunk.length > 0 && bytes + cost > maxGuestCommandBytes) {
      chunks.push(chunk);
      chunk = [];
      bytes = fixed;
    }
    chunk.push(path);
    bytes += cost;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** Where the guest keeps a GC root for every host path it was told about. */
export const hostRootsDir = guestPaths.hostRoots;

/**
 * Lists the host paths the guest's database already holds from an earlier boot: the disk keeps
 * the database, and a root is made only once the path is registered (guestRegisterCommand).
 * Nothing when the database is missing or empty (rc starts it over, and drops the roots, after
 * an unclean stop).
 */
export function guestKnownCommand(): string {
  return `[ -s /nix/var/nix/db/db.sqlite ] && cd ${hostRootsDir} && ${guestPaths.busyboxDir}/ls -A`;
}

/** /nix/store/<name> → <name>. */
function storeName(path: string): string {
  return path.slice(`${storeDir}/`.length);
}

/** Store path names are [0-9a-z]{32}-[A-Za-z0-9+._?=-]+: `?` would glob in a shell. */
function quote(path: string): string {
  return `'${path}'`;
}

/**
 * Runs in the guest with the dump on stdin: registers the paths, roots them (the guest's GC
 * must never delete a host path: it would free nothing on the guest's disk, only hide the path
 * behind a whiteout while a build may need it), removes the whiteouts of those the guest's GC
 * deleted while they were not registered yet (a path the host added since the last sync), and
 * drops the dentry cache so neither that nor a 9p lookup that missed before a path existed
 * can hide it.
 *
 * When every path is already in the guest's own layer (outputs the guest built, copied back to
 * the host after the build), the guest holds them valid: the dump is read and dropped, and Nix,
 * which takes seconds to start under emulation, is not started. A path there that the guest does
 * not hold valid (a copy cut short) is then copied by the next build that needs it, as before
 * host paths were registered. The tools are busybox's: the userland's start slower.
 */
export function guestRegisterCommand(paths: readonly string[]): string {
  const names = paths.map((p) => quote(storeName(p)));
  const bb = guestPaths.busyboxDir;
  return [
    `cd ${guestPaths.rwStore}/upper`,
    'own=1',
    `for p in ${names.join(' ')}; do if { [ ! -e "$p" ] && [ ! -L "$p" ]; } || [ -c "$p" ]; then own=; fi; done`,
    `if [ -n "$own" ]; then exec ${bb}/cat > /dev/null; fi`,
    'nix-store --load-db',
    `${bb}/mkdir -p ${hostRootsDir}`,
    `cd ${hostRootsDir}`,
    `${bb}/ln -sfn ${paths.map(quote).join(' ')} .`,
    `cd ${guestPaths.rwStore}/upper`,
    `for p in ${names.join(' ')}; do if [ -c "$p" ]; then ${bb}/rm -f "$p"; fi; done`,
    'echo 2 > /proc/sys/vm/drop_caches',
  ].join(' && ');
}
