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

const string = (value: string): string => `<string>${xmlEscape(value)}</string>`;
const key = (value: string): string => `<key>${xmlEscape(value)}</key>`;

export function launchdPlist(input: LaunchdPlistInput): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    `  ${key('Label')}`,
    `  ${string(launchdLabel(input.name))}`,
    `  ${key('ProgramArguments')}`,
    '  <array>',
    ...input.programArguments.map((arg) => `    ${string(arg)}`),
    '  </array>',
    `  ${key('RunAtLoad')}`,
    '  <true/>',
    // Restart only after a failure: a clean exit (SIGTERM, bootout) stays stopped.
    `  ${key('KeepAlive')}`,
    '  <dict>',
    `    ${key('SuccessfulExit')}`,
    '    <false/>',
    '  </dict>',
    // The agent lets connections finish and powers the guest off before it exits.
    `  ${key('ExitTimeOut')}`,
    '  <integer>60</integer>',
    `  ${key('StandardOutPath')}`,
    `  ${string(input.logPath)}`,
    `  ${key('StandardErrorPath')}`,
    `  ${string(input.logPath)}`,
    `  ${key('EnvironmentVariables')}`,
    '  <dict>',
    ...Object.entries(input.env).flatMap(([name, value]) => [`    ${key(name)}`, `    ${string(value)}`]),
    '  </dict>',
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}
