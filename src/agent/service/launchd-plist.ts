/** The launchd property list that runs `linux-builder serve` for one instance: pure XML text. */
import { badInput } from '../../errors.js';
import type { ServiceScope } from './plan.js';

export interface LaunchdPlistInput {
  readonly name: string;
  readonly programArguments: readonly string[];
  /** stdout and stderr of the agent. */
  readonly logPath: string;
  /** Agents (user) and daemons (system) share the format; kept for symmetry with systemd. */
  readonly scope: ServiceScope;
  readonly env: Readonly<Record<string, string>>;
}

export function launchdLabel(name: string): string {
  return `org.linux-builder.${name}`;
}

/** XML 1.0 cannot carry most control characters, even escaped. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what it looks for
const notInXml = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;

export function xmlEscape(text: string): string {
  if (notInXml.test(text)) {
    throw badInput(`cannot write a control character into a launchd plist: ${JSON.stringify(text)}`, 'use paths and values without control characters');
  }
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

/** The plist's values: what launchd.plist(5) takes, as JSON-like data. */
export type PlistValue = string | number | boolean | readonly string[] | { readonly [key: string]: PlistValue };

/** The job as data, in the order it is written. */
export function launchdPlistDict(input: LaunchdPlistInput): Record<string, PlistValue> {
  return {
    Label: launchdLabel(input.name),
    ProgramArguments: input.programArguments,
    RunAtLoad: true,
    // Restart only after a failure: a clean exit (SIGTERM, bootout) stays stopped.
    KeepAlive: { SuccessfulExit: false },
    // The agent lets connections finish and powers the guest off before it exits.
    ExitTimeOut: 60,
    StandardOutPath: input.logPath,
    StandardErrorPath: input.logPath,
    EnvironmentVariables: input.env,
  };
}

function plistValue(value: PlistValue, indent: string): string[] {
  if (typeof value === 'string') return [`${indent}<string>${xmlEscape(value)}</string>`];
  if (typeof value === 'boolean') return [`${indent}<${value}/>`];
  if (typeof value === 'number') return [`${indent}<integer>${value}</integer>`];
  if (Array.isArray(value)) return [`${indent}<array>`, ...value.flatMap((item: string) => plistValue(item, `${indent}  `)), `${indent}</array>`];
  return [`${indent}<dict>`, ...plistEntries(value as Record<string, PlistValue>, `${indent}  `), `${indent}</dict>`];
}

function plistEntries(dict: Record<string, PlistValue>, indent: string): string[] {
  return Object.entries(dict).flatMap(([key, value]) => [`${indent}<key>${xmlEscape(key)}</key>`, ...plistValue(value, indent)]);
}

export function launchdPlist(input: LaunchdPlistInput): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    ...plistValue(launchdPlistDict(input), ''),
    '</plist>',
    '',
  ].join('\n');
}
