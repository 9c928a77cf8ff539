/**
 * An instance's launch plan, as data: a pure function of what start prepared and what the driver
 * offers. The devices say what the guest gets — its console, the shares its init mounts (/usr,
 * the store, the config share with its keys), the disk, the network with SSH forwarded to a
 * loopback port or SSH over a vsock socket, entropy — and the driver renders them. The kernel
 * arguments tell the guest's init what it cannot find out itself: the share transport and the
 * network.
 */
import type { Device, GuestNetwork, LaunchPlan, ShareTransport } from '../drivers/driver.js';
import { guestLaunchArgs, shareTags } from '../guest/layout.js';
import type { SshEndpoint } from '../ssh/endpoint.js';
import type { InstancePaths } from './paths.js';

/** The port the guest's sshd listens on, over TCP and over vsock alike. */
export const guestSshPort = 22;

/** The machine as it is (architectures, accelerator, sizes, kernel), and what start chose for the guest. */
export interface PlanInputs extends Pick<LaunchPlan, 'hostArch' | 'guestArch' | 'accel' | 'cores' | 'memoryMiB' | 'kernel' | 'initrd'> {
  readonly paths: InstancePaths;
  /** The host directory the guest mounts read-only as its /usr. */
  readonly usr: string;
  /** How the shares reach the guest. */
  readonly transport: ShareTransport;
  /** How the guest sets up its network card (the driver's network). */
  readonly network: GuestNetwork;
  readonly ssh: SshEndpoint;
  /** Wipe the disk at every start (--ephemeral). */
  readonly ephemeral: boolean;
  /** Rosetta for x86_64-linux: the hypervisor's own (a rosetta device), or a directory shared in its place (tests). */
  readonly rosetta?: { readonly hostPath?: string } | undefined;
}

export function launchPlan(inputs: PlanInputs): LaunchPlan {
  const { paths, transport, ssh } = inputs;
  const devices: Device[] = [
    { kind: 'console', log: paths.consoleLog },
    { kind: 'share', tag: shareTags.usr, hostPath: inputs.usr, transport, contents: 'fixed' },
    { kind: 'share', tag: shareTags.store, hostPath: '/nix/store', transport, contents: 'append-only' },
    { kind: 'share', tag: shareTags.config, hostPath: paths.guestShare, transport },
    { kind: 'disk', path: paths.disk, ephemeral: inputs.ephemeral },
    { kind: 'net', forwards: ssh.kind === 'tcp' ? [{ host: ssh, guestPort: guestSshPort }] : [] },
    ...(ssh.kind === 'unix' ? [{ kind: 'vsock', guestPort: guestSshPort, socket: ssh.path } as const] : []),
    { kind: 'rng' },
    ...rosettaDevices(inputs.rosetta, transport),
  ];
  return {
    name: paths.name,
    hostArch: inputs.hostArch,
    guestArch: inputs.guestArch,
    accel: inputs.accel,
    cores: inputs.cores,
    memoryMiB: inputs.memoryMiB,
    kernel: inputs.kernel,
    initrd: inputs.initrd,
    kernelArgs: [
      'panic=-1',
      'quiet',
      ...guestLaunchArgs({ shares: transport, network: inputs.network, ...(ssh.kind === 'unix' ? { sshVsockPort: guestSshPort } : {}) }),
    ],
    devices,
    processLog: paths.processLog,
  };
}

function rosettaDevices(rosetta: PlanInputs['rosetta'], transport: ShareTransport): Device[] {
  if (rosetta === undefined) return [];
  if (rosetta.hostPath !== undefined) return [{ kind: 'share', tag: shareTags.rosetta, hostPath: rosetta.hostPath, transport }];
  return [{ kind: 'rosetta', tag: shareTags.rosetta }];
}
