/** The ssh_config and known_hosts that reach an instance: pinned host key, instance key only. */
import type { SshEndpoint } from './endpoint.js';

/** One ssh_config Host: what ssh needs to reach an instance's guest with its pinned key. */
export interface SshHost {
  /** ssh_config Host alias, also the HostKeyAlias the pinned key is filed under. */
  readonly alias: string;
  readonly endpoint: SshEndpoint;
  readonly user: string;
  readonly identityFile: string;
  readonly knownHostsFile: string;
}

export function hostAlias(instanceName: string): string {
  return `linux-builder-${instanceName}`;
}

export function knownHostsLine(alias: string, hostPublicKey: string): string {
  const [type, blob] = hostPublicKey.trim().split(/\s+/);
  return `${alias} ${type} ${blob}\n`;
}

/**
 * How ssh gets to the endpoint: a TCP one by name and port; a unix socket through nc, which
 * ssh runs as its ProxyCommand (ssh itself connects only to TCP).
 */
function routeLines(endpoint: SshEndpoint): string[] {
  if (endpoint.kind === 'tcp') return [`  HostName ${endpoint.host}`, `  Port ${endpoint.port}`];
  return ['  HostName localhost', `  ProxyCommand nc -U ${quoteIfNeeded(endpoint.path)}`];
}

/** One Host block. HostKeyAlias makes ssh look the key up by alias, not "[127.0.0.1]:port". */
export function sshConfigBlock(host: SshHost, extra: readonly string[] = [], connectTimeoutSeconds = 10): string {
  return [
    `Host ${host.alias}`,
    ...routeLines(host.endpoint),
    `  User ${host.user}`,
    `  HostKeyAlias ${host.alias}`,
    `  IdentityFile ${quoteIfNeeded(host.identityFile)}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${quoteIfNeeded(host.knownHostsFile)}`,
    '  StrictHostKeyChecking yes',
    '  PasswordAuthentication no',
    '  KbdInteractiveAuthentication no',
    `  ConnectTimeout ${connectTimeoutSeconds}`,
    '  LogLevel ERROR',
    ...extra.map((line) => `  ${line}`),
    '',
  ].join('\n');
}

function quoteIfNeeded(path: string): string {
  return /\s/.test(path) ? `"${path}"` : path;
}
