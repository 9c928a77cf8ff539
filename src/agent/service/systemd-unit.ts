/** The systemd unit that runs `linux-builder serve` for one instance: pure text, tested as a table. */
import type { ServiceScope } from './plan.js';

export interface SystemdUnitInput {
  readonly name: string;
  readonly execStart: readonly string[];
  readonly scope: ServiceScope;
  /** The instance's state directory: the agent's working directory when it exists. */
  readonly stateDir?: string;
  /** Environment= lines, written in this order. */
  readonly env?: Readonly<Record<string, string>>;
}

export function systemdUnitName(name: string): string {
  return `linux-builder-${name}.service`;
}

/** systemd expands %specifiers in every value, even inside quotes. */
function escapeSpecifiers(text: string): string {
  return text.replaceAll('%', '%%');
}

/** C-style escapes systemd undoes inside (and outside) quotes. */
function cEscape(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what it looks for
  return text.replace(/[\\"\x00-\x1f\x7f]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '"') return '\\"';
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

const bareWord = /^[A-Za-z0-9_@+=:,./-]+$/;

/** One ExecStart= word: `$` and `%` doubled (systemd expands both), quoted unless plainly safe. */
export function systemdExecWord(arg: string): string {
  // A lone ";" would separate two command lines.
  if (arg === ';') return '\\;';
  const escaped = escapeSpecifiers(arg.replaceAll('$', () => '$$'));
  return bareWord.test(arg) ? escaped : `"${cEscape(escaped)}"`;
}

/** One Environment= assignment: quoted, `%` doubled; `$` is not expanded there. */
export function systemdEnvironment(key: string, value: string): string {
  return `"${cEscape(escapeSpecifiers(`${key}=${value}`))}"`;
}

/** A unit as data: each section's directives in order, values as written (already escaped). */
export interface UnitSections {
  readonly Unit: readonly (readonly [string, string])[];
  readonly Service: readonly (readonly [string, string])[];
  readonly Install: readonly (readonly [string, string])[];
}

export function systemdUnitSections(input: SystemdUnitInput): UnitSections {
  const env = Object.entries(input.env ?? {});
  return {
    Unit: [
      ['Description', `linux-builder agent for instance ${input.name}: boots the Nix builder VM on demand, stops it when idle`],
      ['After', 'network.target'],
    ],
    Service: [
      ['Type', 'simple'],
      ['ExecStart', input.execStart.map(systemdExecWord).join(' ')],
      // "-": a missing directory is not an error; the agent creates it on first use.
      ...(input.stateDir === undefined ? [] : [['WorkingDirectory', `-${escapeSpecifiers(input.stateDir)}`] as const]),
      ...env.map(([key, value]) => ['Environment', systemdEnvironment(key, value)] as const),
      ['Restart', 'on-failure'],
      ['RestartSec', '2'],
      // SIGTERM to the agent only: it lets connections finish and powers the guest off. Sent to
      // the whole cgroup, QEMU would die at once instead of shutting the guest down.
      ['KillSignal', 'SIGTERM'],
      ['KillMode', 'mixed'],
      ['TimeoutStopSec', '60'],
    ],
    Install: [['WantedBy', input.scope === 'user' ? 'default.target' : 'multi-user.target']],
  };
}

export function systemdUnit(input: SystemdUnitInput): string {
  const sections = systemdUnitSections(input);
  return [
    `# Written by "linux-builder --name ${input.name} service install"; remove it with "service uninstall".`,
    ...(['Unit', 'Service', 'Install'] as const).flatMap((name, i) => [
      ...(i > 0 ? [''] : []),
      `[${name}]`,
      ...sections[name].map(([key, value]) => `${key}=${value}`),
    ]),
    '',
  ].join('\n');
}
