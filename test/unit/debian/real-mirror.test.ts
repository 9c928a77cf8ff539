/**
 * The product's package set resolved against the real archive: the shipped keys verify its
 * InRelease and every name in the set exists for both architectures. Downloads the release
 * file and two package indexes (about 20 MB), no package. The mirror is the one apt uses on
 * this machine, or LINUX_BUILDER_TEST_DEBIAN_MIRROR.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { guestPackageRequest, MirrorUnreachable, resolveDebianSet } from '../../../src/debian/index.js';

/** The first Debian archive URI in apt's sources (one-line or deb822 format), not the security archive. */
async function aptMirror(): Promise<string | undefined> {
  const dir = '/etc/apt/sources.list.d';
  const files = ['/etc/apt/sources.list', ...(await readdir(dir).catch(() => [] as string[])).map((name) => join(dir, name))];
  for (const file of files.filter((f) => /\.(list|sources)$/.test(f))) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const match of text.matchAll(/^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(https?:\/\/\S+)/gm)) {
      const uri = match[1]?.replace(/\/+$/, '');
      if (uri !== undefined && /\/debian$/.test(uri)) return uri;
    }
  }
  return undefined;
}

const mirror = process.env.LINUX_BUILDER_TEST_DEBIAN_MIRROR ?? (await aptMirror());

test('the guest package set resolves on the real archive for amd64 and arm64', {
  skip: mirror === undefined ? 'no Debian mirror in apt\'s sources and LINUX_BUILDER_TEST_DEBIAN_MIRROR unset' : false,
  timeout: 120_000,
}, async (t) => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'lb-debian-real-'));
  try {
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const debian = arch === 'x86_64' ? 'amd64' : 'arm64';
      let names: string[] | undefined;
      // A mirror caught mid-sync serves an index that does not match its InRelease for a while:
      // one more try a little later, then the error stands.
      for (let attempt = 1; names === undefined; attempt++) {
        try {
          const set = await resolveDebianSet({ cacheDir, arch, mirror, request: guestPackageRequest(debian, { foreign: true }) });
          names = set.packages.map((p) => p.name);
        } catch (error) {
          if (error instanceof MirrorUnreachable) return t.skip(error.message);
          if (attempt >= 2) throw error;
          t.diagnostic(`first try failed, trying again in 20 s: ${String(error)}`);
          await new Promise((resolve) => setTimeout(resolve, 20_000));
        }
      }
      for (const name of ['busybox-static', 'openssh-server', 'nix-bin', 'e2fsprogs', 'iproute2', 'qemu-user', 'libc6', `linux-image-${debian}`]) {
        assert.ok(names.includes(name), `${arch}: ${name} in the set`);
      }
      assert.ok(names.some((n) => new RegExp(`^linux-image-\\d.*-${debian}$`).test(n)), `${arch}: the metapackage brings the real kernel image`);
      assert.ok(!names.includes('systemd') && !names.includes('initramfs-tools'), `${arch}: no init system, no initramfs generator`);
    }
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});
