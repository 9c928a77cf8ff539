/** The ssh_config and known_hosts that reach an instance: pinned host key, instance key only. */
export interface SshEndpoint {
  /** ssh_config Host alias, also the HostKeyAlias the pinned key is filed under. */
  readonly alias: string;
  readonly host: string;
  readonly port: number;
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

/** One Host block. HostKeyAlias makes ssh look the key up by alias, not "[127.0.0.1]:port". */
export function sshConfigBlock(endpoint: SshEndpoint, extra: readonly string[] = [], connectTimeoutSeconds = 10): string {
  return [
    `Host ${endpoint.alias}`,
    `  HostName ${endpoint.host}`,
    `  Port ${endpoint.port}`,
    `  User ${endpoint.user}`,
    `  HostKeyAlias ${endpoint.alias}`,
    `  IdentityFile ${quoteIfNeeded(endpoint.identityFile)}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${quoteIfNeeded(endpoint.knownHostsFile)}`,
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
