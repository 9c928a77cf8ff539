/** Unix socket paths: Node truncates longer ones silently (sockaddr_un holds 104 bytes with its NUL); we refuse them. */
import { badInput } from '../errors.js';

export const maxSocketPathBytes = 103;

export const socketPathHint = 'set XDG_RUNTIME_DIR to a shorter directory, or use a shorter --name';

export function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > maxSocketPathBytes) {
    throw badInput(`socket path is ${bytes} bytes, over the ${maxSocketPathBytes}-byte limit of unix sockets: ${path}`, socketPathHint);
  }
}
