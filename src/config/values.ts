/**
 * Parsers for the values a user types: sizes, counts, durations, accelerators, architectures, userlands, mirrors.
 * Each either returns a valid value or throws a bad-input UserError with a hint; never anything else.
 */
import { badInput } from '../errors.js';
import type { AccelChoice, GuestArch } from '../drivers/driver.js';

const sizeUnits: Record<string, number> = {
  '': 1, m: 1, mb: 1, mib: 1,
  g: 1024, gb: 1024, gib: 1024,
  t: 1024 * 1024, tb: 1024 * 1024, tib: 1024 * 1024,
};

/** "4096", "512M", "4G", "2GiB" → MiB (a bare number is MiB, like QEMU's -m). */
export function parseSizeMiB(option: string, text: string, limits: { min: number; max: number; hint: string }): number {
  const match = /^\s*(\d{1,9}(?:\.\d{1,3})?)\s*([a-zA-Z]{0,3})\s*$/.exec(text);
  const unit = match?.[2]?.toLowerCase() ?? '';
  const factor = sizeUnits[unit];
  if (!match || factor === undefined) {
    throw badInput(`${option} must be a size like 4096 or 4G (got ${JSON.stringify(text)})`, limits.hint);
  }
  const mib = Math.round(Number(match[1]) * factor);
  if (mib < limits.min || mib > limits.max) {
    throw badInput(
      `${option} must be between ${formatMiB(limits.min)} and ${formatMiB(limits.max)} (got ${JSON.stringify(text)})`,
      limits.hint,
    );
  }
  return mib;
}

export function formatMiB(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}G` : `${mib}M`;
}

export function parseCount(option: string, text: string, limits: { min: number; max: number; hint: string }): number {
  if (!/^\s*\d{1,6}\s*$/.test(text)) {
    throw badInput(`${option} must be a whole number (got ${JSON.stringify(text)})`, limits.hint);
  }
  const n = Number(text);
  if (n < limits.min || n > limits.max) {
    throw badInput(`${option} must be between ${limits.min} and ${limits.max} (got ${n})`, limits.hint);
  }
  return n;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "90s", "20m", "3h", "1500ms" → milliseconds; a bare number is seconds. */
export function parseDurationMs(option: string, text: string, limits: { min: number; max: number }): number {
  const match = /^\s*(\d{1,7}(?:\.\d{1,3})?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) {
    throw badInput(`${option} must be a duration like 90s, 20m or 3h (got ${JSON.stringify(text)})`);
  }
  const ms = Math.round(Number(match[1]) * (durationUnits[match[2] ?? 's'] ?? 1000));
  if (ms < limits.min || ms > limits.max) {
    throw badInput(
      `${option} must be between ${formatDuration(limits.min)} and ${formatDuration(limits.max)} (got ${JSON.stringify(text)})`,
    );
  }
  return ms;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const accels: readonly AccelChoice[] = ['auto', 'kvm', 'hvf', 'tcg'];

export function parseAccel(text: string): AccelChoice {
  const found = accels.find((a) => a === text);
  if (!found) {
    throw badInput(`--accel must be one of ${accels.join(', ')} (got ${JSON.stringify(text)})`, 'auto picks KVM or HVF when usable, TCG otherwise');
  }
  return found;
}

/** The guest's CPU architecture (--arch). */
export const archChoices = ['x86_64', 'aarch64'] as const;

export function parseArch(text: string): GuestArch {
  const found = archChoices.find((a) => a === text);
  if (!found) {
    throw badInput(`--arch must be one of ${archChoices.join(', ')} (got ${JSON.stringify(text)})`, "the guest's architecture; the default is the host's, another one runs under TCG");
  }
  return found;
}

/** Which hypervisor runs the VM (--driver): vfkit on a Mac that has it, QEMU elsewhere, or as chosen. */
export const driverChoices = ['auto', 'qemu', 'vfkit'] as const;
export type DriverChoice = (typeof driverChoices)[number];

export function parseDriver(text: string): DriverChoice {
  const found = driverChoices.find((d) => d === text);
  if (!found) {
    throw badInput(
      `--driver must be one of ${driverChoices.join(', ')} (got ${JSON.stringify(text)})`,
      'auto picks vfkit on a Mac where it is installed, QEMU everywhere else',
    );
  }
  return found;
}

/** Where the guest's programs come from (src/guest/userland.ts). */
export const userlandChoices = ['auto', 'host', 'debian'] as const;
export type UserlandChoice = (typeof userlandChoices)[number];

export function parseUserland(text: string): UserlandChoice {
  const found = userlandChoices.find((u) => u === text);
  if (!found) {
    throw badInput(
      `--userland must be one of ${userlandChoices.join(', ')} (got ${JSON.stringify(text)})`,
      "host uses the host's /usr (a Debian or Ubuntu host), debian fetches Debian's packages for the guest, auto picks",
    );
  }
  return found;
}

/** A Debian mirror's base URL, e.g. http://deb.debian.org/debian; no trailing slash. */
export function parseMirror(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') {
    throw badInput(`--mirror must be the http or https URL of a Debian mirror (got ${JSON.stringify(text)})`, 'for example: --mirror http://deb.debian.org/debian');
  }
  return url.href.replace(/\/+$/, '');
}
