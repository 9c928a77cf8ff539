import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../../src/errors.js';
import { checkPrivateDir, ensurePrivateDir } from '../../../src/fs/private-dir.js';

const asRoot = process.getuid?.() === 0;
const nobody = 65534;

/** A fresh base with XDG dirs pointing inside it; restores the environment afterwards. */
async function withPlaces(run: (base: string) => Promise<void>): Promise<void> {
  const saved = { state: process.env.XDG_STATE_HOME, cache: process.env.XDG_CACHE_HOME, runtime: process.env.XDG_RUNTIME_DIR };
  const base = mkdtempSync(join(tmpdir(), 'lb-private-'));
  process.env.XDG_STATE_HOME = join(base, 'state');
  process.env.XDG_CACHE_HOME = join(base, 'cache');
  process.env.XDG_RUNTIME_DIR = join(base, 'run');
  try {
    await run(base);
  } finally {
    for (const [name, value] of [['XDG_STATE_HOME', saved.state], ['XDG_CACHE_HOME', saved.cache], ['XDG_RUNTIME_DIR', saved.runtime]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    rmSync(base, { recursive: true, force: true });
  }
}

const mode = (path: string): number => statSync(path).mode & 0o7777;

async function refusal(dir: string): Promise<UserError> {
  try {
    await ensurePrivateDir(dir);
  } catch (error) {
    assert.ok(error instanceof UserError, String(error));
    assert.ok(!error.message.includes('\n'), 'one line');
    return error;
  }
  assert.fail(`${dir} was accepted`);
}

test('a fresh runtime dir and every directory down to the instance are 0700; an own 0755 one becomes 0700', () =>
  withPlaces(async (base) => {
    const instance = join(base, 'run', 'linux-builder', 'dev');
    await ensurePrivateDir(instance);
    assert.equal(mode(join(base, 'run', 'linux-builder')), 0o700);
    assert.equal(mode(instance), 0o700);
    chmodSync(instance, 0o755);
    await ensurePrivateDir(instance);
    assert.equal(mode(instance), 0o700);
  }));

test('a runtime dir writable by others is refused, naming it, its owner and mode, and nothing is written in it', () =>
  withPlaces(async (base) => {
    const root = join(base, 'run', 'linux-builder');
    mkdirSync(root, { recursive: true });
    chmodSync(root, 0o777);
    const error = await refusal(join(root, 'dev'));
    assert.match(error.message, new RegExp(`^refusing to use ${root}: it is writable by others \\(owned by \\S+ \\(uid \\d+\\), mode 0777\\)`));
    assert.match(error.hint ?? '', /remove it .*, or set XDG_RUNTIME_DIR to a directory of your own/);
    assert.deepEqual(readdirSync(root), []);
    assert.equal(mode(root), 0o777, 'left as it was');
    await assert.rejects(checkPrivateDir(join(root, 'dev')), (e: unknown) => e instanceof UserError && e.message === error.message);
    assert.deepEqual(readdirSync(root), [], 'checking creates nothing');
  }));

test('checking a runtime dir that does not exist yet, or is private, passes and creates nothing', () =>
  withPlaces(async (base) => {
    const instance = join(base, 'run', 'linux-builder', 'dev');
    await checkPrivateDir(instance);
    assert.deepEqual(readdirSync(base), []);
    await ensurePrivateDir(instance);
    await checkPrivateDir(instance);
  }));

test('a runtime dir of another user is refused', { skip: !asRoot && 'chown needs root' }, () =>
  withPlaces(async (base) => {
    const root = join(base, 'run', 'linux-builder');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    chownSync(root, nobody, nobody);
    const error = await refusal(join(root, 'dev'));
    assert.match(error.message, new RegExp(`^refusing to use ${root}: it belongs to (\\S+ \\()?uid ${nobody}\\)?, mode 0700;`));
    assert.deepEqual(readdirSync(root), []);
  }));

test('a symbolic link for the runtime dir or the instance dir is refused, its target untouched', () =>
  withPlaces(async (base) => {
    const target = join(base, 'elsewhere');
    mkdirSync(target, { mode: 0o755 });
    chmodSync(target, 0o755);
    const root = join(base, 'run', 'linux-builder');
    mkdirSync(join(base, 'run'));
    symlinkSync(target, root);
    assert.match((await refusal(join(root, 'dev'))).message, new RegExp(`^refusing to use ${root}: it is a symbolic link to ${target}, owned by `));

    rmSync(root);
    mkdirSync(root, { mode: 0o700 });
    symlinkSync(target, join(root, 'dev'));
    assert.match((await refusal(join(root, 'dev'))).message, /: it is a symbolic link to /);
    assert.equal(mode(target), 0o755, 'the target keeps its mode');
    assert.deepEqual(readdirSync(target), []);
    assert.ok(lstatSync(join(root, 'dev')).isSymbolicLink());
  }));

test('a state dir in a shared place is checked; in the user\'s own place a link the user made is followed', () =>
  withPlaces(async (base) => {
    const shared = join(base, 'state');
    mkdirSync(shared, { mode: 0o1777 });
    chmodSync(shared, 0o1777);
    mkdirSync(join(shared, 'linux-builder'), { mode: 0o777 });
    chmodSync(join(shared, 'linux-builder'), 0o777);
    const error = await refusal(join(shared, 'linux-builder', 'dev'));
    assert.match(error.hint ?? '', /set XDG_STATE_HOME/);

    const own = join(base, 'cache');
    const target = join(base, 'big-disk');
    mkdirSync(own, { mode: 0o755 });
    mkdirSync(target, { mode: 0o755 });
    chmodSync(target, 0o755);
    symlinkSync(target, join(own, 'linux-builder'));
    await ensurePrivateDir(join(own, 'linux-builder'));
    assert.equal(mode(target), 0o755, 'a link is never chmod-ed through');
  }));
