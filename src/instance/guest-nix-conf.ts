/** The guest's nix.conf: root builds without build users or sandbox, no substituters. */
export interface GuestNixOptions {
  readonly cores: number;
  readonly extraPlatforms: readonly string[];
}

export function guestNixConf(options: GuestNixOptions): string {
  return [
    '# written by linux-builder at every start',
    'build-users-group =',
    'sandbox = false',
    'trusted-users = root',
    `max-jobs = ${options.cores}`,
    ...(options.extraPlatforms.length > 0 ? [`extra-platforms = ${options.extraPlatforms.join(' ')}`] : []),
    'system-features = benchmark big-parallel',
    // offline guests would otherwise retry cache.nixos.org on every build
    'substituters =',
    '',
  ].join('\n');
}
