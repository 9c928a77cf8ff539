/**
 * last-exit.json: how and when the instance's last VM exited — stopped on request, or not
 * (killed, crashed, powered off inside, a failed boot) — so `status` can say why it is down
 * after state.json is gone. Overwritten by the next exit.
 */
import { z } from 'zod';
import { readVersionedJsonOrUndefined, versionedFile, writeVersionedJson } from '../fs/versioned-json.js';

export const lastExitSchema = z.object({
  version: z.literal(1),
  /** The VM process that exited. */
  pid: z.number().int().positive(),
  /** When it exited, or when that was first noticed (ISO 8601). */
  at: z.string(),
  /** Someone asked for it: `stop`, the agent's idle stop or its shutdown. */
  requested: z.boolean(),
  /** In the user's words: 'stopped by "linux-builder stop"', 'killed by SIGKILL', … */
  reason: z.string(),
});
export type LastExitRecord = z.infer<typeof lastExitSchema>;
export type LastExit = Omit<LastExitRecord, 'version'>;

const lastExitFile = versionedFile(lastExitSchema, 1);

/** The recorded exit; null when there is none or the file cannot be read (it is only informative). */
export async function readLastExit(path: string): Promise<LastExit | null> {
  const record = await readVersionedJsonOrUndefined(path, lastExitFile);
  if (record === undefined) return null;
  const { version: _version, ...exit } = record;
  return exit;
}

export async function writeLastExit(path: string, exit: LastExit): Promise<void> {
  await writeVersionedJson(path, lastExitFile, { version: 1, ...exit });
}

/**
 * Records an exit nobody asked for, unless this pid's exit is already recorded (a stop marks
 * its VM before powering it off, so the exit it causes is never mistaken for a crash).
 */
export async function recordUnrequestedExit(path: string, exit: Omit<LastExit, 'requested'>): Promise<LastExit> {
  const known = await readLastExit(path);
  if (known?.pid === exit.pid) return known;
  const record = { ...exit, requested: false };
  await writeLastExit(path, record);
  return record;
}

/** What a VM's exit status says, in the user's words. */
export function describeExit(info: { code: number | null; signal: string | null }): string {
  if (info.signal !== null) return `killed by ${info.signal}`;
  // -no-reboot: a guest that panicked or rebooted ends QEMU with 0 too.
  if (info.code === 0) return 'the guest powered off, rebooted or panicked by itself (see its console)';
  return `the VM process exited with code ${info.code ?? '?'}`;
}
