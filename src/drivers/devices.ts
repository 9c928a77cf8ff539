/**
 * The launch plan's devices, as data: what the guest gets, not how a hypervisor spells it.
 * Each driver renders every device it has into its own command line (QEMU: drivers/qemu/argv.ts)
 * and refuses one it does not have, so a second driver is a second renderer, not a second
 * orchestrator.
 */
import type { TcpEndpoint } from '../ssh/endpoint.js';

/** How a host directory reaches the guest: virtio-fs (a vhost-user daemon, or the hypervisor's own) or 9p. */
export type ShareTransport = 'virtiofs' | '9p';

/**
 * How a share's files change while the VM runs, which says how long the guest may keep what it
 * read of them:
 * - `mutable` (the default): the host rewrites files; the guest rereads a file at each open;
 * - `append-only`: new entries appear, but a file once there never changes (a Nix store);
 * - `fixed`: nothing changes at all (a userland).
 */
export type ShareContents = 'mutable' | 'append-only' | 'fixed';

/** A host directory the guest mounts read-only by its tag. */
export interface ShareDevice {
  readonly kind: 'share';
  readonly tag: string;
  readonly hostPath: string;
  readonly transport: ShareTransport;
  readonly contents?: ShareContents;
}

/** The instance disk: a raw, sparse file the guest sees as its only block device. */
export interface DiskDevice {
  readonly kind: 'disk';
  readonly path: string;
  /** Wiped at the next start anyway: the guest's flushes need not reach the host's disk. */
  readonly ephemeral: boolean;
}

/** A host TCP endpoint on the loopback whose connections go to a port of the guest. */
export interface PortForward {
  readonly host: TcpEndpoint;
  readonly guestPort: number;
}

/** The guest's network card: out through the hypervisor's NAT, in only through the forwards. */
export interface NetDevice {
  readonly kind: 'net';
  readonly forwards: readonly PortForward[];
}

/** A vsock port the guest listens on, reached from the host through a unix socket. */
export interface VsockDevice {
  readonly kind: 'vsock';
  readonly guestPort: number;
  readonly socket: string;
}

/** The guest's console, written to a file on the host. */
export interface ConsoleDevice {
  readonly kind: 'console';
  readonly log: string;
}

/** Entropy from the host, so the guest's sshd need not wait for its own. */
export interface RngDevice {
  readonly kind: 'rng';
}

/** Apple's Rosetta, shared into the guest under a tag (Virtualization.framework only). */
export interface RosettaDevice {
  readonly kind: 'rosetta';
  readonly tag: string;
}

export type Device = ShareDevice | DiskDevice | NetDevice | VsockDevice | ConsoleDevice | RngDevice | RosettaDevice;

/** The devices of one kind, in plan order. */
export function devicesOf<K extends Device['kind']>(devices: readonly Device[], kind: K): Extract<Device, { kind: K }>[] {
  return devices.filter((device): device is Extract<Device, { kind: K }> => device.kind === kind);
}
