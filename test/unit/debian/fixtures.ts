/** Tiny .debs made in the test, and a Debian mirror served on 127.0.0.1 with an InRelease signed by a test key. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import tar from 'tar-stream';

export interface TarEntry {
  readonly name: string;
  readonly type?: 'file' | 'directory' | 'symlink' | 'link';
  readonly mode?: number;
  readonly content?: string;
  readonly linkname?: string;
}

export async function tarArchive(entries: readonly TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), ...(e.linkname ? { linkname: e.linkname } : {}) };
    pack.entry(header, type === 'file' ? Buffer.from(e.content ?? '') : Buffer.alloc(0));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An ar archive, as dpkg-deb writes it. */
export function arArchive(members: readonly { name: string; data: Buffer }[]): Buffer {
  const parts: Buffer[] = [Buffer.from('!<arch>\n')];
  for (const { name, data } of members) {
    const field = (text: string, width: number): string => text.padEnd(width, ' ');
    parts.push(Buffer.from(`${field(name, 16)}${field('0', 12)}${field('0', 6)}${field('0', 6)}${field('100644', 8)}${field(String(data.length), 10)}\`\n`, 'latin1'));
    parts.push(data);
    if (data.length % 2 === 1) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** Compresses with node's gzip or the xz/zstd command; undefined when that command is not installed. */
export function compress(data: Buffer, suffix: '.gz' | '.xz' | '.zst' | ''): Buffer | undefined {
  if (suffix === '') return data;
  if (suffix === '.gz') return gzipSync(data);
  try {
    return execFileSync(suffix === '.xz' ? 'xz' : 'zstd', ['-c', '-q'], { input: data, maxBuffer: 64 * 2 ** 20 });
  } catch {
    return undefined;
  }
}

/** A .deb of the files, with a control file of the fields (Package and Version at least). */
export async function makeDeb(
  entries: readonly TarEntry[],
  suffix: '.gz' | '.xz' | '.zst' | '' = '.gz',
  control: Readonly<Record<string, string>> = {},
): Promise<Buffer> {
  const data = compress(await tarArchive(entries), suffix);
  if (data === undefined) throw new Error(`no compressor for ${suffix}`);
  const fields = { Package: 'test', Version: '1.0-1', Architecture: 'amd64', ...control };
  const controlText = `${Object.entries(fields).map(([key, value]) => `${key}: ${value}`).join('\n')}\n`;
  const controlTar = compress(await tarArchive([{ name: './', type: 'directory' }, { name: './control', content: controlText }]), suffix === '' ? '' : '.gz');
  return arArchive([
    { name: 'debian-binary', data: Buffer.from('2.0\n') },
    { name: suffix === '' ? 'control.tar' : 'control.tar.gz', data: controlTar ?? Buffer.alloc(0) },
    { name: `data.tar${suffix}`, data },
  ]);
}

export interface FakePackage {
  readonly name: string;
  readonly version?: string;
  readonly depends?: string;
  readonly provides?: string;
  readonly files: readonly TarEntry[];
}

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

export async function testKey(): Promise<{ privateKey: openpgp.PrivateKey; publicKey: openpgp.PublicKey }> {
  const { privateKey, publicKey } = await openpgp.generateKey({ userIDs: [{ name: 'test archive' }], format: 'object' });
  return { privateKey, publicKey };
}

/** The files of a mirror of trixie/main/amd64 holding the packages: path → bytes. */
export async function mirrorFiles(packages: readonly FakePackage[], signingKey: openpgp.PrivateKey): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const stanzas: string[] = [];
  for (const p of packages) {
    const version = p.version ?? '1.0-1';
    const deb = await makeDeb(p.files, '.gz', { Package: p.name, Version: version, ...(p.depends ? { Depends: p.depends } : {}) });
    const filename = `pool/main/${p.name[0]}/${p.name}/${p.name}_${version}_amd64.deb`;
    files.set(filename, deb);
    stanzas.push([
      `Package: ${p.name}`, `Version: ${version}`, 'Architecture: amd64', 'Priority: optional',
      ...(p.depends ? [`Depends: ${p.depends}`] : []), ...(p.provides ? [`Provides: ${p.provides}`] : []),
      `Filename: ${filename}`, `Size: ${deb.length}`, `SHA256: ${sha256(deb)}`, 'Description: a test package',
    ].join('\n'));
  }
  const index = gzipSync(Buffer.from(`${stanzas.join('\n\n')}\n`));
  files.set('dists/trixie/main/binary-amd64/Packages.gz', index);
  const release = [
    'Origin: Debian', 'Suite: stable', 'Codename: trixie', 'Date: Sat, 01 Nov 2025 00:00:00 UTC',
    'Architectures: amd64', 'Components: main', 'SHA256:',
    ` ${sha256(index)} ${index.length} main/binary-amd64/Packages.gz`,
  ].join('\n');
  files.set('dists/trixie/InRelease', Buffer.from(await signed(`${release}\n`, signingKey)));
  return files;
}

export async function signed(text: string, key: openpgp.PrivateKey): Promise<string> {
  return openpgp.sign({ message: await openpgp.createCleartextMessage({ text }), signingKeys: key });
}

export interface Mirror {
  readonly url: string;
  readonly files: Map<string, Buffer>;
  /** Paths the server sends only half of, then cuts the connection. */
  readonly cutOff: Set<string>;
  readonly requests: string[];
  close(): Promise<void>;
}

export async function serveMirror(files: Map<string, Buffer>): Promise<Mirror> {
  const cutOff = new Set<string>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').replace(/^\/debian\//, ''));
    requests.push(path);
    const body = files.get(path);
    if (body === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    if (cutOff.has(path)) {
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/debian`,
    files,
    cutOff,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A port nothing listens on: bound, then closed again. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
