/**
 * ssh2, loaded the first time it is used: the agent idles without it (its crypto, a WebAssembly
 * poly1305 among it, costs some 14 MB of resident memory), and `status` or `--version` never
 * pay for it.
 */
import { createRequire } from 'node:module';

type Ssh2 = typeof import('ssh2');

const require = createRequire(import.meta.url);
let loaded: Ssh2 | undefined;

export function ssh2(): Ssh2 {
  loaded ??= require('ssh2') as Ssh2;
  return loaded;
}
