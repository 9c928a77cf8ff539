/**
 * How the guest powers off: busybox init's shutdown action (scripts/shutdown.sh) ends every
 * process and unmounts the instance disk, for `poweroff` over SSH and the power button alike; the
 * power button's listener (scripts/power-button.sh) turns a press of the hypervisor's power key
 * into that poweroff.
 */
import { guestPaths } from './init.js';
import { renderScript, shellAssignments } from './scripts.js';

/** The input device a device tree's power key appears as (QEMU's aarch64 virt, Virtualization.framework). */
export const powerKeyDevice = 'gpio-keys';

export function shutdownScript(): string {
  return renderScript('shutdown', {
    BUSYBOX_DIR: guestPaths.busyboxDir,
    SETTINGS: shellAssignments({ busybox_dir: guestPaths.busyboxDir, rw_store: guestPaths.rwStore }),
  });
}

export function powerButtonScript(): string {
  return renderScript('power-button', {
    BUSYBOX_DIR: guestPaths.busyboxDir,
    SETTINGS: shellAssignments({ busybox_dir: guestPaths.busyboxDir, key_name: powerKeyDevice }),
  });
}
