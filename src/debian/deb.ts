/**
 * Reads a .deb without dpkg: its control fields, and its data.tar.{xz,zst,gz} unpacked into a
 * directory — files with their modes, directories, symlinks and hardlinks; devices and fifos are
 * left out, owners are not kept (the tree belongs to whoever fetched it). A path that would leave
 * the directory (absolute, "..", or through a symlink) fails the unpack.
 */
import { createWriteStream } from 'node:fs';
import { chmod, link, lstat, mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type tar from 'tar-stream';
import { errnoCode } from '../errors.js';
import { text } from 'node:stream/consumers';
import { arMembers, type ArMember } from './ar.js';
import { decompressed } from './decompress.js';
import { parseStanzas } from './packages.js';

/** An entry's bytes, as tar-stream hands them out. */
type EntryContent = AsyncIterable<unknown> & { resume(): unknown };

/** A tar entry's path would land outside the tree. */
export class PathEscape extends Error {}

/** "./usr/bin/x" → "usr/bin/x"; "./" → ""; throws for absolute paths and "..". */
export function treePath(name: string): string {
  if (name.startsWith('/')) throw new PathEscape(`absolute path ${name}`);
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new PathEscape(`path ${name} climbs out with ".."`);
  return segments.join('/');
}

/** The directory packages are unpacked into, remembering what it has checked and the modes it owes. */
export class UnpackTarget {
  private readonly realDirs = new Set<string>(['']);
  private readonly dirModes = new Map<string, number>();

  constructor(readonly root: string) {}

  /** Makes every directory of rel, refusing to pass through anything that is not a real directory. */
  private async directory(rel: string): Promise<void> {
    if (this.realDirs.has(rel)) return;
    const slash = rel.lastIndexOf('/');
    await this.directory(slash < 0 ? '' : rel.slice(0, slash));
    const path = join(this.root, rel);
    const found = await lstat(path).catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    });
    if (found === undefined) await mkdir(path, { mode: 0o755 });
    else if (!found.isDirectory()) throw new PathEscape(`path ${rel} is ${found.isSymbolicLink() ? 'a symlink' : 'a file'} where a directory is needed`);
    this.realDirs.add(rel);
  }

  /** Readies rel for a new file, symlink or hardlink: its parent made, whatever was there removed. */
  private async place(rel: string): Promise<string> {
    if (rel === '') throw new PathEscape('an entry replaces the root of the tree');
    const slash = rel.lastIndexOf('/');
    await this.directory(slash < 0 ? '' : rel.slice(0, slash));
    if (this.realDirs.has(rel)) throw new PathEscape(`path ${rel} is a directory`);
    const path = join(this.root, rel);
    await rm(path, { force: true });
    return path;
  }

  async entry(header: tar.Header, content: EntryContent): Promise<void> {
    const rel = treePath(header.name);
    const mode = (header.mode ?? 0o644) & 0o7777;
    switch (header.type) {
      case 'directory':
        await this.directory(rel);
        this.dirModes.set(rel, mode);
        content.resume();
        return;
      case 'file':
      case 'contiguous-file': {
        const path = await this.place(rel);
        await pipeline(Readable.from(content), createWriteStream(path, { flags: 'wx', mode: 0o600 }));
        await chmod(path, mode); // exactly the package's mode, whatever the umask
        return;
      }
      case 'symlink': {
        const path = await this.place(rel);
        await symlink(header.linkname ?? '', path);
        content.resume();
        return;
      }
      case 'link': {
        const target = treePath(header.linkname ?? '');
        const path = await this.place(rel);
        await link(join(this.root, target), path);
        content.resume();
        return;
      }
      default:
        // devices and fifos: a guest makes its own /dev
        content.resume();
    }
  }

  /** Gives directories their packaged modes, deepest first; the owner keeps write access so the cache can be cleaned. */
  async finish(): Promise<void> {
    const dirs = [...this.dirModes].sort(([a], [b]) => b.length - a.length);
    for (const [rel, mode] of dirs) await chmod(join(this.root, rel), mode | 0o700);
  }
}

/** The member named "<base>" or "<base>.{xz,zst,gz}": data.tar, control.tar. */
async function tarMember(debPath: string, base: string): Promise<ArMember> {
  const members = await arMembers(debPath);
  const member = members.find((m) => ['', '.xz', '.zst', '.gz'].some((suffix) => m.name === `${base}${suffix}`));
  if (member === undefined) throw new Error(`no ${base} member (members: ${members.map((m) => m.name).join(', ')})`);
  return member;
}

/** Each entry of a member's tar, in order, until visit has seen them all or throws. */
async function eachEntry(debPath: string, member: ArMember, visit: (header: tar.Header, content: EntryContent) => Promise<void>): Promise<void> {
  // Loaded when a .deb is read: most commands never read one.
  const { extract: tarExtract } = (await import('tar-stream')).default;
  const extract = tarExtract();
  const compression = member.name.replace(/^.*\.tar/, '');
  const feeding = pipeline(await decompressed(debPath, compression, { start: member.offset, size: member.size }), extract);
  try {
    for await (const entry of extract) await visit(entry.header, entry);
  } catch (error) {
    extract.destroy();
    await feeding.catch(() => undefined);
    throw error;
  }
  await feeding;
}

/** Unpacks one .deb's files into the target. */
export async function unpackDeb(debPath: string, target: UnpackTarget): Promise<void> {
  await eachEntry(debPath, await tarMember(debPath, 'data.tar'), (header, content) => target.entry(header, content));
}

/** The fields of a .deb's control file: Package, Version, Depends, … */
export async function debControl(debPath: string): Promise<Map<string, string>> {
  let control: string | undefined;
  await eachEntry(debPath, await tarMember(debPath, 'control.tar'), async (header, content) => {
    if (header.type === 'file' && treePath(header.name) === 'control') control = await text(content as AsyncIterable<Uint8Array>);
    else content.resume();
  });
  const [fields] = parseStanzas(control ?? '');
  if (fields === undefined || !fields.has('Package')) throw new Error('no control file with a Package field');
  return fields;
}
