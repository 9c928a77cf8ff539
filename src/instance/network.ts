/**
 * The guest's network as the launch plan gives it: the driver's. Tests only:
 * LINUX_BUILDER_TEST_GUEST_DHCP=1 has a guest whose driver sets fixed addresses (QEMU's user
 * network) take them from the network's DHCP server instead (QEMU's serves the same ones), so the
 * guest's DHCP path, which vfkit's NAT needs, runs for real on any host.
 */
import type { GuestNetwork } from '../drivers/driver.js';

export const testDhcpVariable = 'LINUX_BUILDER_TEST_GUEST_DHCP';

export function guestNetwork(network: GuestNetwork, env: NodeJS.ProcessEnv = process.env): GuestNetwork {
  if (env[testDhcpVariable] !== '1' || network.kind === 'dhcp') return network;
  return { kind: 'dhcp', dns: network.dns, hostNet: network.hostNet };
}
