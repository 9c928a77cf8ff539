/** The ar archive a .deb is: "!<arch>\n", then members, each a 60-byte header and its data padded to even. */
import { open } from 'node:fs/promises';

export interface ArMember {
  readonly name: string;
  /** Where the member's data starts in the file, and its length. */
  readonly offset: number;
  readonly size: number;
}

const magic = '!<arch>\n';
const headerSize = 60;

/** The members of an ar file, read from its headers only; throws on anything that is not ar. */
export async function arMembers(path: string): Promise<ArMember[]> {
  const file = await open(path, 'r');
  try {
    const { size: fileSize } = await file.stat();
    const head = Buffer.alloc(headerSize);
    await file.read(head, 0, magic.length, 0);
    if (head.toString('latin1', 0, magic.length) !== magic) throw new Error('not an ar archive');
    const members: ArMember[] = [];
    for (let offset = magic.length; offset + headerSize <= fileSize;) {
      await file.read(head, 0, headerSize, offset);
      if (head.toString('latin1', 58, 60) !== '`\n') throw new Error(`bad ar member header at byte ${offset}`);
      // GNU ar ends names with "/"
      const name = head.toString('latin1', 0, 16).trimEnd().replace(/\/$/, '');
      const size = Number(head.toString('latin1', 48, 58).trim());
      const dataOffset = offset + headerSize;
      if (!Number.isSafeInteger(size) || size < 0 || dataOffset + size > fileSize) throw new Error(`ar member ${name} runs past the end of the file`);
      members.push({ name, offset: dataOffset, size });
      offset = dataOffset + size + (size % 2);
    }
    return members;
  } finally {
    await file.close();
  }
}
