/**
 * The one reader of the product's versioned JSON files (state, settings, cache metadata). A
 * missing file, a damaged one and one a newer linux-builder wrote are three distinct outcomes,
 * so each caller can say what its user should do about each; none of them throws.
 */
import type { z } from 'zod';
import { readTextIfExists, writeFileAtomic } from './files.js';

/** A kind of file: its zod schema (which holds the version field as a literal) and where the version is. */
export interface VersionedFile<T> {
  readonly schema: z.ZodType<T>;
  /** The field that carries the version: "version" in state, "format" in cache metadata. */
  readonly field: 'version' | 'format';
  /** The version this linux-builder writes and reads. */
  readonly version: number;
}

export type JsonRead<T> =
  | { readonly kind: 'missing' }
  | { readonly kind: 'ok'; readonly value: T }
  /** Unreadable, not JSON, or not what the schema says; reason names the file and the first problem. */
  | { readonly kind: 'corrupt'; readonly reason: string }
  /** Written by a newer linux-builder: this one cannot know what it means. */
  | { readonly kind: 'newer'; readonly version: number; readonly reason: string };

export function versionedFile<T>(schema: z.ZodType<T>, version: number, field: 'version' | 'format' = 'version'): VersionedFile<T> {
  return { schema, field, version };
}

/** Reads and checks path; never throws. */
export async function readVersionedJson<T>(path: string, file: VersionedFile<T>): Promise<JsonRead<T>> {
  let text: string | undefined;
  try {
    text = await readTextIfExists(path);
  } catch (error) {
    return { kind: 'corrupt', reason: `cannot read ${path}: ${(error as Error).message}` };
  }
  return text === undefined ? { kind: 'missing' } : parseVersionedJson(text, path, file);
}

/** Checks the text of path (which exists). */
export function parseVersionedJson<T>(text: string, path: string, file: VersionedFile<T>): JsonRead<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'corrupt', reason: `${path} is not valid JSON` };
  }
  // Before the schema: a newer file may have any shape, and saying "invalid" about it would mislead.
  const version = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>)[file.field] : undefined;
  if (typeof version === 'number' && Number.isInteger(version) && version > file.version) {
    return { kind: 'newer', version, reason: `${path} was written by a newer linux-builder (${file.field} ${version}; this one reads ${file.version})` };
  }
  const parsed = file.schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: 'corrupt', reason: `${path} is invalid (${issue ? `${issue.path.join('.') || 'the whole file'}: ${issue.message}` : 'unknown problem'})` };
  }
  return { kind: 'ok', value: parsed.data };
}

/** The value, or undefined for a file that is missing, damaged or newer: for files that only inform or cache. */
export async function readVersionedJsonOrUndefined<T>(path: string, file: VersionedFile<T>): Promise<T | undefined> {
  const read = await readVersionedJson(path, file);
  return read.kind === 'ok' ? read.value : undefined;
}

/** Writes value (which carries its version) atomically, in the layout every reader expects. */
export async function writeVersionedJson<T>(path: string, file: VersionedFile<T>, value: T, mode?: number): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(file.schema.parse(value), null, 2)}\n`, mode);
}
