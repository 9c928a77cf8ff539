/**
 * Where an SSH server is reached from the host: a TCP port on the loopback (QEMU's forwarded
 * port, the agent's listener) or a unix socket (a hypervisor's relay to the guest's vsock).
 * The one shape for it: the driver says which kind its VM has, the instance makes the value
 * once, and the readiness ladder, ssh, the ssh_config, status and the agent take it as it is.
 */
import { connect, type Socket } from 'node:net';
import { z } from 'zod';

/** The only address the product listens on or connects to for SSH. */
export const loopbackHost = '127.0.0.1';

export type TcpEndpoint = { readonly kind: 'tcp'; readonly host: string; readonly port: number };
export type UnixEndpoint = { readonly kind: 'unix'; readonly path: string };
export type SshEndpoint = TcpEndpoint | UnixEndpoint;

export const sshEndpointSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('tcp'), host: z.string().min(1), port: z.number().int().min(1).max(65535) }),
  z.object({ kind: z.literal('unix'), path: z.string().startsWith('/') }),
]);

export function loopbackPort(port: number): TcpEndpoint {
  return { kind: 'tcp', host: loopbackHost, port };
}

/** "127.0.0.1:4022", "[::1]:4022", or the socket's path. */
export function describeEndpoint(endpoint: SshEndpoint): string {
  if (endpoint.kind === 'unix') return endpoint.path;
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** A stream to the endpoint; it emits 'connect' or 'error' like any net.Socket. */
export function connectEndpoint(endpoint: SshEndpoint): Socket {
  return endpoint.kind === 'tcp' ? connect({ host: endpoint.host, port: endpoint.port }) : connect({ path: endpoint.path });
}
