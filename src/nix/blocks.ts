/**
 * Marked blocks in a user's config files: inserted idempotently, removed exactly. What lies
 * outside the markers is never touched, so an uninstall restores the file byte for byte.
 */
export interface BlockEdit {
  readonly text: string;
  /** A newline was added after the user's last line (it had none): the uninstall removes it. */
  readonly addedNewline: boolean;
}

export function beginMarker(id: string): string {
  return `# BEGIN linux-builder ${id} (managed by "linux-builder nix-config --install"; removed by --uninstall)`;
}

export function endMarker(id: string): string {
  return `# END linux-builder ${id}`;
}

interface Located {
  readonly start: number;
  readonly end: number;
}

function locate(text: string, id: string): Located | undefined {
  const begin = `${beginMarker(id)}\n`;
  const end = `${endMarker(id)}\n`;
  const start = text.startsWith(begin) ? 0 : text.indexOf(`\n${begin}`) + 1;
  if (start === 0 && !text.startsWith(begin)) return undefined;
  const endAt = text.indexOf(end, start);
  if (endAt < 0) return undefined;
  return { start, end: endAt + end.length };
}

export function hasBlock(text: string, id: string): boolean {
  return locate(text, id) !== undefined;
}

export function blockBody(text: string, id: string): string | undefined {
  const found = locate(text, id);
  if (!found) return undefined;
  return text.slice(found.start + beginMarker(id).length + 1, found.end - endMarker(id).length - 1);
}

/**
 * Puts body between markers: replaces an existing block in place, else inserts it first
 * (ssh_config: first value wins) or last (nix.conf: last value wins).
 */
export function upsertBlock(text: string, id: string, body: string, where: 'first' | 'last'): BlockEdit {
  const block = `${beginMarker(id)}\n${body.endsWith('\n') ? body : `${body}\n`}${endMarker(id)}\n`;
  const found = locate(text, id);
  if (found) return { text: text.slice(0, found.start) + block + text.slice(found.end), addedNewline: false };
  if (where === 'first') return { text: block + text, addedNewline: false };
  const addedNewline = text !== '' && !text.endsWith('\n');
  return { text: `${text}${addedNewline ? '\n' : ''}${block}`, addedNewline };
}

/** Removes the block; with addedNewline, also the newline the install added before it. */
export function removeBlock(text: string, id: string, addedNewline = false): string {
  const found = locate(text, id);
  if (!found) return text;
  const before = text.slice(0, found.start);
  const after = text.slice(found.end);
  return (addedNewline && after === '' && before.endsWith('\n') ? before.slice(0, -1) : before) + after;
}
