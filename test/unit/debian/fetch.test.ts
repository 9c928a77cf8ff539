/** The fetcher against a Debian mirror served on 127.0.0.1, its InRelease signed by a key made here. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as openpgp from 'openpgp';
import { debianUserland, progressLine, type DebianUserlandOptions, type FetchProgress } from '../../../src/debian/index.js';
import { UserError } from '../../../src/errors.js';
import { closedPort, mirrorFiles, serveMirror, sha256, signed, testKey, type FakePackage, type Mirror } from './fixtures.js';

const packages: FakePackage[] = [
  { name: 'app', depends: 'libfoo (>= 1.0), mail-transport-agent | postfix', files: [{ name: './usr/bin/app', mode: 0o755, content: 'app' }] },
  { name: 'libfoo', version: '1.2-1', files: [{ name: './usr/lib/libfoo.so.1', content: 'libfoo' }, { name: './usr/lib/libfoo.so', type: 'symlink', linkname: 'libfoo.so.1' }] },
  { name: 'tiny-mta', provides: 'mail-transport-agent', files: [{ name: './usr/sbin/sendmail', mode: 0o755, content: 'mta' }] },
  { name: 'postfix', files: [{ name: './usr/sbin/postfix', content: 'never fetched' }] },
];

let key: { privateKey: openpgp.PrivateKey; publicKey: openpgp.PublicKey };
let files: Map<string, Buffer>;
let scratch: string;

before(async () => {
  key = await testKey();
  files = await mirrorFiles(packages, key.privateKey);
  scratch = await mkdtemp(join(tmpdir(), 'lb-debian-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let caches = 0;
async function freshCache(): Promise<string> {
  const dir = join(scratch, `cache-${caches++}`);
  await mkdir(dir);
  return dir;
}

function options(cacheDir: string, mirror: string, more: Partial<DebianUserlandOptions> = {}): DebianUserlandOptions {
  return { cacheDir, arch: 'x86_64', request: { packages: ['app'] }, mirror, keys: [key.publicKey], ...more };
}

async function withMirror(changes: (files: Map<string, Buffer>, mirror: Mirror) => void | Promise<void>, run: (mirror: Mirror) => Promise<void>): Promise<void> {
  const mirror = await serveMirror(new Map(files));
  try {
    await changes(mirror.files, mirror);
    await run(mirror);
  } finally {
    await mirror.close();
  }
}

/** Everything under the cache's debian/ directory, as relative paths. */
async function listing(cacheDir: string): Promise<string[]> {
  const dir = join(cacheDir, 'debian');
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}

/** A failure is one line, and the cache holds no tree, no request record and no temp file. */
async function failsCleanly(run: Promise<unknown>, message: RegExp, cacheDir: string): Promise<void> {
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof UserError, String(error));
    assert.match(error.message, message);
    assert.ok(!error.message.includes('\n'), `one line: ${error.message}`);
    assert.ok(error.hint !== undefined && !error.hint.includes('\n'));
    return true;
  });
  const left = await listing(cacheDir);
  assert.deepEqual(left.filter((p) => /^(trees|requests)\/./.test(p) || /\.(part|unpack|tmp)$/.test(p)), [], `left behind: ${left.join(', ')}`);
}

test('fetches, verifies and unpacks the closure; a second call reuses the tree offline', async () => {
  const cacheDir = await freshCache();
  const progress: FetchProgress[] = [];
  let first: Awaited<ReturnType<typeof debianUserland>> | undefined;
  await withMirror(() => undefined, async (mirror) => {
    first = await debianUserland(options(cacheDir, mirror.url, { onProgress: (p) => progress.push(p) }));
  });
  assert.ok(first);
  assert.deepEqual(first.packages.map((p) => p.name), ['app', 'libfoo', 'tiny-mta'], 'the virtual name by its provider; postfix not needed');
  assert.equal(await readFile(join(first.root, 'usr/bin/app'), 'utf8'), 'app');
  assert.equal(await readFile(join(first.root, 'usr/lib/libfoo.so'), 'utf8'), 'libfoo');
  const last = progress.filter((p) => p.stage === 'download').at(-1);
  assert.equal(last?.packagesDone, 3);
  assert.equal(last?.packagesTotal, 3);
  assert.ok(last !== undefined && last.bytesDone === last.bytesTotal && last.bytesTotal > 0);
  assert.equal(progress.filter((p) => p.stage === 'unpack').at(-1)?.packagesDone, 3);

  // the mirror is gone: the same request is answered from the cache
  const again = await debianUserland(options(cacheDir, `http://127.0.0.1:${await closedPort()}/debian`));
  assert.deepEqual(again, first);
  const lines: string[] = [];
  const refreshed = await debianUserland(options(cacheDir, `http://127.0.0.1:${await closedPort()}/debian`, { refresh: true, log: (l) => lines.push(l) }));
  assert.deepEqual(refreshed, first);
  assert.match(lines.join('\n'), /cannot reach the Debian mirror .*: using the Debian packages fetched before/);
});

test('the same set from a second request shares the tree and the downloads', async () => {
  const cacheDir = await freshCache();
  await withMirror(() => undefined, async (mirror) => {
    const first = await debianUserland(options(cacheDir, mirror.url));
    const fetched = mirror.requests.length;
    const second = await debianUserland(options(cacheDir, mirror.url, { request: { packages: ['app', 'libfoo'] } }));
    assert.equal(second.key, first.key);
    assert.deepEqual(mirror.requests.slice(fetched), ['dists/trixie/InRelease'], 'only the release file is asked for again');
  });
});

test('an InRelease signed by another key is refused', async () => {
  const cacheDir = await freshCache();
  const stranger = await testKey();
  await withMirror(async (f) => {
    const text = f.get('dists/trixie/InRelease')?.toString() ?? '';
    const body = /-----BEGIN PGP SIGNED MESSAGE-----\nHash: \w+\n\n([\s\S]*?)\n-----BEGIN PGP SIGNATURE-----/.exec(text)?.[1] ?? '';
    f.set('dists/trixie/InRelease', Buffer.from(await signed(`${body}\n`, stranger.privateKey)));
  }, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url)), /InRelease is not signed by Debian: no good signature/, cacheDir);
  });
});

test('an altered InRelease is refused', async () => {
  const cacheDir = await freshCache();
  await withMirror((f) => {
    f.set('dists/trixie/InRelease', Buffer.from(f.get('dists/trixie/InRelease')?.toString().replace('Origin: Debian', 'Origin: Debiam') ?? ''));
  }, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url)), /is not signed by Debian/, cacheDir);
  });
});

test('a package whose bytes do not match its SHA256 is refused and not kept', async () => {
  const cacheDir = await freshCache();
  const path = [...files.keys()].find((p) => p.includes('/libfoo_')) ?? '';
  await withMirror((f) => {
    const deb = Buffer.from(f.get(path) ?? '');
    deb.writeUInt8(deb.readUInt8(deb.length - 3) ^ 0xff, deb.length - 3);
    f.set(path, deb);
  }, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url)), /^libfoo 1\.2-1 from .* does not match the SHA256 the archive signed/, cacheDir);
    const debs = (await listing(cacheDir)).filter((p) => p.startsWith('debs/'));
    assert.ok(!debs.some((p) => p.includes(sha256(files.get(path) ?? ''))), 'the bad download is not cached');
  });
});

test('a download cut off halfway is refused, and the next run completes', async () => {
  const cacheDir = await freshCache();
  const path = [...files.keys()].find((p) => p.includes('/app_')) ?? '';
  await withMirror((_f, mirror) => {
    mirror.cutOff.add(path);
  }, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url)), /^the download of app 1\.0-1 from .* (broke off|ended) after \d+ of \d+ bytes/, cacheDir);
    mirror.cutOff.clear();
    const tree = await debianUserland(options(cacheDir, mirror.url));
    assert.equal(tree.packages.length, 3);
  });
});

test('a package the suite does not have is named', async () => {
  const cacheDir = await freshCache();
  await withMirror(() => undefined, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url, { request: { packages: ['app', 'nix-bin'] } })), /^Debian trixie \(amd64\) on .* has no package nix-bin$/, cacheDir);
  });
});

test('a package file missing from the mirror is named', async () => {
  const cacheDir = await freshCache();
  await withMirror((f) => {
    f.delete([...f.keys()].find((p) => p.includes('/tiny-mta_')) ?? '');
  }, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url)), /^the Debian mirror has no tiny-mta 1\.0-1: .* answered HTTP 404$/, cacheDir);
  });
});

test('an unreachable mirror and no cache: one line saying what is missing and how to get it', async () => {
  const cacheDir = await freshCache();
  const url = `http://127.0.0.1:${await closedPort()}/debian`;
  await assert.rejects(debianUserland(options(cacheDir, url)), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /^cannot reach the Debian mirror http:\/\/127\.0\.0\.1:\d+ for the trixie release file \(InRelease\) \(ECONNREFUSED\), and the cache has no Debian trixie packages for amd64 yet \(app\)$/);
    assert.match(error.hint ?? '', /--mirror with a reachable Debian mirror, or copy .*debian from a machine that has fetched them/);
    return true;
  });
  assert.deepEqual(await listing(cacheDir), []);
});

test('what an interrupted fetch left behind is removed, never used', async () => {
  const cacheDir = await freshCache();
  // a fetch killed while unpacking and downloading: its pid is gone
  const dead = 2 ** 22 + 12345;
  const trees = join(cacheDir, 'debian', 'trees');
  const debs = join(cacheDir, 'debian', 'debs');
  await mkdir(join(trees, `abc.${dead}-0a0b.unpack`, 'root'), { recursive: true });
  await mkdir(debs, { recursive: true });
  await writeFile(join(debs, `x.deb.${dead}-0c0d.part`), 'half');
  await withMirror(() => undefined, async (mirror) => {
    await debianUserland(options(cacheDir, mirror.url));
  });
  const left = await listing(cacheDir);
  assert.deepEqual(left.filter((p) => p.includes(String(dead))), []);
});

test('a release file of another suite, though signed, is refused', async () => {
  const cacheDir = await freshCache();
  await withMirror(async (f) => {
    const text = f.get('dists/trixie/InRelease')?.toString() ?? '';
    const body = /-----BEGIN PGP SIGNED MESSAGE-----\nHash: \w+\n\n([\s\S]*?)\n-----BEGIN PGP SIGNATURE-----/.exec(text)?.[1] ?? '';
    f.set('dists/trixie/InRelease', Buffer.from(await signed(`${body.replace('Codename: trixie', 'Codename: bookworm')}\n`, key.privateKey)));
  }, async (mirror) => {
    await failsCleanly(debianUserland(options(cacheDir, mirror.url)), /InRelease is the release file of bookworm, not trixie$/, cacheDir);
  });
});

test('progress as a terminal line', () => {
  assert.equal(progressLine({ stage: 'download', packagesDone: 12, packagesTotal: 121, bytesDone: 47.5 * 2 ** 20, bytesTotal: 212.4 * 2 ** 20 }),
    'Debian packages: downloading 12/121, 47.5/212.4 MiB');
  assert.equal(progressLine({ stage: 'unpack', packagesDone: 3, packagesTotal: 121, bytesDone: 0, bytesTotal: 0 }), 'Debian packages: unpacking 3/121');
});
