/**
 * Facts about the machine we run on: CPU architecture, cores, memory, OS and TSC frequency.
 * The parsers are pure; the readers around them never throw for a missing optional fact.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import type { HostArch } from '../drivers/driver.js';
import { failed } from '../errors.js';

export type HostPlatform = 'linux' | 'darwin';

export function hostArch(arch: string = process.arch): HostArch {
  if (arch === 'x64') return 'x86_64';
  if (arch === 'arm64') return 'aarch64';
  throw failed(`unsupported host CPU architecture: ${arch}`, 'linux-builder runs on x86_64 and aarch64 hosts');
}

export function hostPlatform(platform: NodeJS.Platform = process.platform): HostPlatform {
  if (platform === 'linux' || platform === 'darwin') return platform;
  throw failed(`unsupported host operating system: ${platform}`, 'linux-builder runs on Linux and macOS');
}

export function hostCpuCount(): number {
  return availableParallelism();
}

export function hostMemoryMiB(): number {
  return Math.floor(totalmem() / (1024 * 1024));
}

/** "tsc: Detected 2596.132 MHz processor" → 2596132. */
export function tscKhzFromDmesg(dmesg: string): number | undefined {
  const match = /tsc: Detected (\d+)\.?(\d*) MHz/.exec(dmesg);
  if (match === null) return undefined;
  const fraction = (match[2] ?? '').padEnd(3, '0').slice(0, 3);
  return Number(match[1]) * 1000 + Number(fraction);
}

/** The first "cpu MHz : 2596.132" of /proc/cpuinfo → 2596132. */
export function tscKhzFromCpuinfo(cpuinfo: string): number | undefined {
  const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo);
  if (match === null) return undefined;
  const khz = Math.round(Number(match[1]) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

/**
 * The host TSC frequency in kHz (x86 Linux), from the most exact source available:
 * sysfs, then the kernel's boot message (dmesg may be forbidden), then /proc/cpuinfo.
 */
export async function hostTscKhz(): Promise<number | undefined> {
  const sysfs = await readOptional('/sys/devices/system/cpu/cpu0/tsc_freq_khz');
  const fromSysfs = sysfs === undefined ? NaN : Number(sysfs.trim());
  if (Number.isInteger(fromSysfs) && fromSysfs > 0) return fromSysfs;
  const fromDmesg = tscKhzFromDmesg(await dmesgText());
  if (fromDmesg !== undefined) return fromDmesg;
  const cpuinfo = await readOptional('/proc/cpuinfo');
  return cpuinfo === undefined ? undefined : tscKhzFromCpuinfo(cpuinfo);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

function dmesgText(): Promise<string> {
  return new Promise((resolve) => {
    execFile('dmesg', { timeout: 3000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      resolve(error === null ? stdout : '');
    });
  });
}
