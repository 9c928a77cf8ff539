/** The files through which the QEMU driver controls a VM, inside the instance's runtime dir. */
import { join } from 'node:path';
import type { VmControl } from '../driver.js';

export interface QemuFiles {
  /** QMP: "quit" for a hard stop; also what names this instance's QEMU in process listings. */
  readonly qmpSocket: string;
  readonly pidFile: string;
}

export function qemuFiles(control: Pick<VmControl, 'runtimeDir'>): QemuFiles {
  return { qmpSocket: join(control.runtimeDir, 'qmp.sock'), pidFile: join(control.runtimeDir, 'vm.pid') };
}

export function qemuControl(runtimeDir: string): VmControl {
  return { runtimeDir, sockets: [qemuFiles({ runtimeDir }).qmpSocket] };
}
