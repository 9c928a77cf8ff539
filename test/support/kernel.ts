/**
 * The kernel tests pass as --kernel: the one a start as root picks (the host's, or the
 * distribution's downloaded once into the shared cache), so a test with its own cache does not
 * download it again.
 */
import { locateKernel, type KernelLocation } from '../../src/guest/kernel-source.js';
import { roots } from '../../src/instance/paths.js';
import { hostArch } from '../../src/platform/host.js';

export function sharedKernel(): Promise<KernelLocation> {
  return locateKernel({ cacheDir: roots().cache, hostArch: hostArch(), log: () => {} });
}
