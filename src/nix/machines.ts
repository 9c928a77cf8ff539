/**
 * Nix's machines line for an instance. Nix 2.8 machine URIs carry no port, so the URI names
 * an ssh_config Host alias; the last field pins the guest's host key (base64 of its .pub line).
 */
export interface MachineSpec {
  readonly alias: string;
  readonly user: string;
  readonly systems: readonly string[];
  readonly identityFile: string;
  readonly maxJobs: number;
  readonly speedFactor: number;
  readonly supportedFeatures: readonly string[];
  readonly mandatoryFeatures: readonly string[];
  /** The guest's host public key line, "ssh-ed25519 AAAA… comment". */
  readonly hostPublicKey: string;
}

const list = (items: readonly string[]): string => (items.length > 0 ? items.join(',') : '-');

export function machinesLine(spec: MachineSpec): string {
  if (/\s/.test(spec.identityFile)) {
    // The machines format is whitespace-separated and has no quoting.
    throw new Error(`the key path must not contain whitespace: ${spec.identityFile}`);
  }
  return [
    `ssh-ng://${spec.user}@${spec.alias}`,
    list(spec.systems),
    spec.identityFile,
    String(spec.maxJobs),
    String(spec.speedFactor),
    list(spec.supportedFeatures),
    list(spec.mandatoryFeatures),
    Buffer.from(`${spec.hostPublicKey.trim()}\n`).toString('base64'),
  ].join(' ');
}
