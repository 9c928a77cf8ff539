/** The one Debian download module: the host's apt (faked, and once for real) and the mirror fetcher, and the .deb read without dpkg. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { aptDownload, AptDownloadFailed, mirrorDownload, readDeb, unpackDebs, type CommandRunner } from '../../../src/debian/download.js';
import { parsePackages } from '../../../src/debian/packages.js';
import { compareVersions } from '../../../src/debian/version.js';
import { UserError } from '../../../src/errors.js';
import { compress, makeDeb, serveMirror, sha256 } from './fixtures.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-download-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let dirs = 0;
async function fresh(): Promise<string> {
  const path = join(dir, `d${dirs++}`);
  await mkdir(path);
  return path;
}

test('a .deb\'s control fields are read without dpkg, whatever its compression', async () => {
  for (const suffix of ['.gz', '.xz', '.zst', ''] as const) {
    if (compress(Buffer.from('x'), suffix) === undefined) continue; // no such compressor here: the other suffixes still run
    const path = join(await fresh(), 'p.deb');
    await writeFile(path, await makeDeb([], suffix, { Package: 'openssh-server', Version: '1:10.0p1-7', 'Pre-Depends': 'init-system-helpers (>= 1.54~)', Depends: 'libc6 (>= 2.38), libwtmpdb0 | libfoo' }));
    const deb = await readDeb(path);
    assert.equal(deb.name, 'openssh-server', suffix);
    assert.equal(deb.version, '1:10.0p1-7');
    assert.deepEqual(deb.depends.map((alternatives) => alternatives.map((r) => r.name)), [['init-system-helpers'], ['libc6'], ['libwtmpdb0', 'libfoo']]);
  }
});

/** Stands in for apt-get download: writes the .debs it is given by name, or answers as apt does. */
function fakeApt(debs: Record<string, Buffer>, calls: string[] = []): CommandRunner {
  return async (command, args, cwd) => {
    calls.push([command, ...args].join(' '));
    const names = args.slice(2);
    const unknown = names.filter((name) => debs[name] === undefined);
    if (unknown.length > 0) return { code: 100, stdout: '', stderr: unknown.map((name) => `E: Unable to locate package ${name}`).join('\n') };
    for (const name of names) await writeFile(join(cwd ?? '.', `${name.replace(':', '_')}_1.0_amd64.deb`), debs[name] ?? Buffer.alloc(0));
    return { code: 0, stdout: '', stderr: "W: Download is performed unsandboxed as root as file '…' couldn't be accessed by user '_apt'.\n" };
  };
}

test('apt-get download: every package asked for, read; into the directory given; nothing else run', async () => {
  const calls: string[] = [];
  const run = fakeApt({
    'libwrap0': await makeDeb([{ name: './usr/lib/libwrap.so.0', content: 'wrap' }], '.gz', { Package: 'libwrap0', Version: '7.6.q-32' }),
    'busybox-static:arm64': await makeDeb([{ name: './usr/bin/busybox', mode: 0o755, content: 'bb' }], '.gz', { Package: 'busybox-static', Version: '1:1.37.0-6' }),
  }, calls);
  const target = join(await fresh(), 'nested', 'debs');
  const debs = await aptDownload(['libwrap0', 'busybox-static:arm64'], target, run);
  assert.deepEqual(debs.map((d) => `${d.name} ${d.version}`).sort(), ['busybox-static 1:1.37.0-6', 'libwrap0 7.6.q-32']);
  assert.deepEqual(calls, ['apt-get -q download libwrap0 busybox-static:arm64']);
  assert.ok(debs.every((d) => d.path.startsWith(target)));
});

test('apt-get download failures are told apart: no apt, a package apt does not know, anything else (its error line)', async () => {
  const failure = async (run: CommandRunner): Promise<AptDownloadFailed> => {
    try {
      await aptDownload(['linux-image-amd64'], await fresh(), run);
    } catch (error) {
      assert.ok(error instanceof AptDownloadFailed);
      return error;
    }
    throw new Error('no failure');
  };
  assert.equal((await failure(async () => ({ code: null, stdout: '', stderr: 'spawn apt-get ENOENT' }))).kind, 'no-apt');
  const unknown = await failure(fakeApt({}));
  assert.equal(unknown.kind, 'unknown');
  assert.equal(unknown.detail, 'E: Unable to locate package linux-image-amd64');
  const network = await failure(async () => ({ code: 100, stdout: '', stderr: 'E: Failed to fetch http://deb.debian.org/x.deb  Temporary failure resolving\nW: Some index files failed\n' }));
  assert.equal(network.kind, 'failed');
  assert.equal(network.detail, 'E: Failed to fetch http://deb.debian.org/x.deb  Temporary failure resolving', 'the error line, not a trailing warning');
  assert.equal((await failure(async () => ({ code: 0, stdout: '', stderr: '' }))).kind, 'failed', 'exit 0 without a .deb is a failure too');
});

test('several .debs unpack into one tree as dpkg -x would: later files replace earlier ones, directories keep their modes', async () => {
  const work = await fresh();
  const first = join(work, 'a.deb');
  const second = join(work, 'b.deb');
  await writeFile(first, await makeDeb([{ name: './etc/', type: 'directory', mode: 0o750 }, { name: './usr/bin/tool', mode: 0o755, content: 'old' }]));
  await writeFile(second, await makeDeb([{ name: './usr/bin/tool', mode: 0o755, content: 'new' }, { name: './usr/lib/x86_64-linux-gnu/libwrap.so.0', content: 'w' }]));
  const root = join(work, 'root');
  await unpackDebs([first, second], root);
  assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), 'new');
  assert.equal((await stat(join(root, 'usr/bin/tool'))).mode & 0o777, 0o755);
  assert.equal((await stat(join(root, 'etc'))).mode & 0o777, 0o750);
  assert.equal(await readFile(join(root, 'usr/lib/x86_64-linux-gnu/libwrap.so.0'), 'utf8'), 'w');
});

test('the mirror fetcher downloads a package of the index, checked against it; a wrong one leaves nothing', async () => {
  const deb = await makeDeb([{ name: './usr/bin/app', content: 'app' }], '.gz', { Package: 'app', Version: '1.0-1' });
  const index = parsePackages(`Package: app\nVersion: 1.0-1\nArchitecture: amd64\nFilename: pool/main/a/app/app_1.0-1_amd64.deb\nSize: ${deb.length}\nSHA256: ${sha256(deb)}\n`, compareVersions);
  const entry = index.packages.get('app');
  assert.ok(entry);
  const mirror = await serveMirror(new Map([[entry.filename, deb]]));
  try {
    const work = await fresh();
    const dest = join(work, 'app.deb');
    await mirrorDownload(mirror.url, entry, dest);
    assert.equal((await readDeb(dest)).name, 'app');
    mirror.files.set(entry.filename, Buffer.concat([deb.subarray(0, deb.length - 1), Buffer.from('!')]));
    await rm(dest);
    await assert.rejects(mirrorDownload(mirror.url, entry, dest), (error: unknown) => error instanceof UserError && /does not match the SHA256 the archive signed/.test(error.message));
    assert.deepEqual(await readdir(work), [], 'no file, no temp file');
  } finally {
    await mirror.close();
  }
});

const hasApt = await stat('/usr/bin/apt-get').then(() => true, () => false);

test('the host\'s real apt-get: a small package downloaded and read, its files unpacked', { skip: !hasApt && 'no apt-get on this host' }, async (t) => {
  const work = await fresh();
  let debs;
  try {
    debs = await aptDownload(['libwrap0'], join(work, 'debs'));
  } catch (error) {
    // offline or without apt lists: nothing of ours to test
    if (error instanceof AptDownloadFailed && /Failed to fetch|Temporary failure|Unable to locate/.test(error.detail)) return t.skip(error.detail);
    throw error;
  }
  const [deb] = debs;
  assert.equal(deb?.name, 'libwrap0');
  assert.match(deb.version, /^7\.6/);
  assert.ok(deb.depends.some((alternatives) => alternatives.some((r) => r.name === 'libc6')));
  await unpackDebs([deb.path], join(work, 'root'));
  const listed = execFileSync('dpkg-deb', ['-c', deb.path], { encoding: 'utf8' }).split('\n').filter((line) => line.startsWith('-')).map((line) => line.split(/\s+/).pop() ?? '');
  assert.ok(listed.length > 0);
  for (const file of listed) assert.ok((await stat(join(work, 'root', file))).isFile(), `${file} as dpkg-deb lists it`);
});
