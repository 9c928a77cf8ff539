/**
 * doctor on a Mac with the vfkit driver: Apple Silicon, macOS 13 or later, vfkit on PATH (0.6.2 or
 * later, for --pidfile) and signed with the virtualization entitlement, Rosetta, the nix-daemon,
 * socket paths vfkit can use. The facts are gathered in one place (probeMacFacts) and judged by a
 * pure function, so every verdict is tested on any host.
 */
import { UserError } from '../errors.js';
import { runCommand } from '../agent/service/manager.js';
import { findOnPath } from '../drivers/process.js';
import { checkVfkitSocketPath } from '../drivers/vfkit/argv.js';
import { vfkitInstallHint } from '../drivers/vfkit/process.js';
import { rosettaInstalled } from '../drivers/vfkit/rosetta.js';
import { daemonListening, daemonRestartCommand } from '../nix/daemon.js';
import type { Check } from './checks.js';
import { rosettaInstallCommand } from '../instance/rosetta.js';

export interface VfkitFacts {
  readonly path: string;
  /** What `vfkit --version` printed after "version:", e.g. v0.6.4; undefined when it printed nothing usable. */
  readonly version: string | undefined;
  /** Whether its code signature carries com.apple.security.virtualization; undefined when codesign could not say. */
  readonly entitled: boolean | undefined;
}

export interface MacFacts {
  /** The machine's CPU (hw.optional.arm64), whatever this Node was built for. */
  readonly appleSilicon: boolean;
  /** This Node is an x86_64 build running under Rosetta (sysctl.proc_translated). */
  readonly nodeTranslated: boolean;
  /** sw_vers -productVersion, e.g. 14.6.1. */
  readonly macosVersion: string | undefined;
  readonly vfkit: VfkitFacts | undefined;
  readonly rosettaInstalled: boolean;
  readonly nixDaemonRunning: boolean;
  /** The unix sockets the instance's VM listens on, by what they are for. */
  readonly socketPaths: ReadonlyArray<{ readonly what: string; readonly path: string }>;
}

export interface MacOptions {
  /** Rosetta is wanted (not --no-rosetta). */
  readonly rosetta: boolean;
}

/** vfkit 0.6.2 added --pidfile, which the driver uses. */
export const minVfkitVersion = [0, 6, 2] as const;
export const minMacosMajor = 13;

const ok = (name: string, detail: string): Check => ({ name, verdict: 'ok', detail });
const warn = (name: string, detail: string, fix?: string): Check => ({ name, verdict: 'warn', detail, ...(fix ? { fix } : {}) });
const fail = (name: string, detail: string, fix: string): Check => ({ name, verdict: 'fail', detail, fix });

/** "v0.6.4", "0.6.2-5-gabcdef" → [0, 6, 4]; undefined for anything else. */
export function parseVersion(text: string | undefined): [number, number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text?.trim() ?? '');
  return match ? [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] : undefined;
}

function atLeast(version: readonly number[], floor: readonly number[]): boolean {
  for (let i = 0; i < floor.length; i++) {
    const a = version[i] ?? 0;
    const b = floor[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}


function cpuCheck(facts: MacFacts): Check {
  if (!facts.appleSilicon) {
    return fail('mac', 'an Intel Mac: the vfkit driver runs aarch64 guests with Rosetta, which needs Apple Silicon', 'use the QEMU driver: linux-builder start --driver qemu --arch x86_64');
  }
  if (facts.nodeTranslated) {
    return warn('mac', 'Apple Silicon, but this Node.js is an x86_64 build running under Rosetta', 'install the arm64 Node.js (e.g. brew install node, or the arm64 installer from nodejs.org)');
  }
  return ok('mac', 'Apple Silicon');
}

function macosCheck(facts: MacFacts): Check {
  const version = parseVersion(facts.macosVersion);
  if (version === undefined) return warn('macos', `could not read the macOS version (sw_vers said ${JSON.stringify(facts.macosVersion ?? '')})`);
  if (version[0] < minMacosMajor) {
    return fail('macos', `macOS ${facts.macosVersion}: the Rosetta share and vfkit's builds need macOS ${minMacosMajor} (Ventura) or later`, `update macOS to ${minMacosMajor} or later (System Settings → General → Software Update)`);
  }
  return ok('macos', `macOS ${facts.macosVersion}`);
}

function vfkitChecks(facts: MacFacts): Check[] {
  const vfkit = facts.vfkit;
  if (vfkit === undefined) return [fail('vfkit', 'vfkit not found on PATH', vfkitInstallHint)];
  const floor = minVfkitVersion.join('.');
  const version = parseVersion(vfkit.version);
  const versionCheck =
    version === undefined
      ? warn('vfkit', `${vfkit.path}: could not read its version (vfkit --version); ${floor} or later is needed`, 'brew upgrade vfkit')
      : atLeast(version, minVfkitVersion)
        ? ok('vfkit', `${vfkit.path} ${vfkit.version}`)
        : fail('vfkit', `${vfkit.path} ${vfkit.version} is too old: --pidfile came with vfkit ${floor}`, 'brew upgrade vfkit (or a newer nixpkgs#vfkit)');
  const signature =
    vfkit.entitled === undefined
      ? warn('vfkit signature', `could not read ${vfkit.path}'s entitlements (codesign -d --entitlements -)`)
      : vfkit.entitled
        ? ok('vfkit signature', 'signed with com.apple.security.virtualization')
        : fail(
            'vfkit signature',
            `${vfkit.path} is not signed with the com.apple.security.virtualization entitlement: Virtualization.framework refuses to start its VMs`,
            `reinstall vfkit from Homebrew or nixpkgs, whose builds carry it; a self-built vfkit: "make" signs it with vf.entitlements`,
          );
  return [versionCheck, signature];
}

function rosettaCheck(facts: MacFacts, options: MacOptions): Check {
  if (!options.rosetta) return ok('rosetta', 'off (--no-rosetta): x86_64-linux builds run under qemu-user in the guest');
  if (!facts.appleSilicon) return ok('rosetta', 'not on an Intel Mac: x86_64-linux builds run natively');
  if (facts.rosettaInstalled) return ok('rosetta', 'installed: x86_64-linux builds run through Rosetta in the guest');
  return warn('rosetta', 'not installed: x86_64-linux builds fall back to qemu-user in the guest, many times slower', rosettaInstallCommand);
}

function daemonCheck(facts: MacFacts): Check {
  if (facts.nixDaemonRunning) return ok('nix-daemon', 'running (its builds go to the builder through root\'s ssh)');
  return fail('nix-daemon', 'nothing accepts on the nix-daemon socket: Nix on macOS builds through it', `sudo ${daemonRestartCommand('darwin').join(' ')}`);
}

function socketCheck(facts: MacFacts): Check {
  for (const { what, path } of facts.socketPaths) {
    try {
      checkVfkitSocketPath(what, path);
    } catch (error) {
      if (error instanceof UserError) return fail('socket paths', error.message, error.hint ?? '');
      throw error;
    }
  }
  return ok('socket paths', `${facts.socketPaths.map((s) => s.what).join(', ')}: short and plain enough for vfkit`);
}

/** The verdicts for a Mac, from its facts. Pure. */
export function macChecks(facts: MacFacts, options: MacOptions): Check[] {
  return [cpuCheck(facts), macosCheck(facts), ...vfkitChecks(facts), rosettaCheck(facts, options), daemonCheck(facts), socketCheck(facts)];
}

async function sysctl(name: string): Promise<string> {
  return (await runCommand(['/usr/sbin/sysctl', '-n', name])).stdout.trim();
}

export async function probeVfkit(path: string = process.env.PATH ?? ''): Promise<VfkitFacts | undefined> {
  const binary = await findOnPath('vfkit', path);
  if (binary === undefined) return undefined;
  const printed = await runCommand([binary, '--version']);
  const version = /version:\s*(\S+)/.exec(printed.stdout)?.[1];
  const signature = await runCommand(['/usr/bin/codesign', '-d', '--entitlements', '-', '--xml', binary]);
  const entitled = signature.code === 0 ? `${signature.stdout}${signature.stderr}`.includes('com.apple.security.virtualization') : undefined;
  return { path: binary, version, entitled };
}

export async function probeMacFacts(socketPaths: MacFacts['socketPaths']): Promise<MacFacts> {
  const [arm64, translated, macos, vfkit, rosetta, daemon] = await Promise.all([
    sysctl('hw.optional.arm64'),
    sysctl('sysctl.proc_translated'),
    runCommand(['/usr/bin/sw_vers', '-productVersion']),
    probeVfkit(),
    rosettaInstalled(),
    daemonListening(),
  ]);
  return {
    appleSilicon: arm64 === '1',
    nodeTranslated: translated === '1',
    macosVersion: macos.code === 0 ? macos.stdout.trim() : undefined,
    vfkit,
    rosettaInstalled: rosetta,
    nixDaemonRunning: daemon,
    socketPaths,
  };
}
