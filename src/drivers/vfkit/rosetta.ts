/** Whether Apple's Rosetta is installed on this Mac: its Linux runtime, or macOS running an x86_64 program. */
import { access } from 'node:fs/promises';
import { runCommand } from '../../agent/service/manager.js';

/** Where Rosetta for Linux lies once Rosetta is installed (the directory vfkit's rosetta device shares). */
export const rosettaLinux = '/Library/Apple/usr/libexec/oah/RosettaLinux/rosetta';

export async function rosettaInstalled(): Promise<boolean> {
  if (process.platform !== 'darwin') return false;
  if (await access(rosettaLinux).then(() => true, () => false)) return true;
  return (await runCommand(['/usr/bin/arch', '-x86_64', '/usr/bin/true'])).code === 0;
}
