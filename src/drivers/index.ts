/** Picks the driver for this host. The only place outside drivers/* that knows their names. */
import type { Driver } from './driver.js';
import { qemuDriver } from './qemu/index.js';

export function selectDriver(): Driver {
  return qemuDriver;
}
