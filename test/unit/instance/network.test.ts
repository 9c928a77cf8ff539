import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestNetwork, testDhcpVariable } from '../../../src/instance/network.js';

const user = { kind: 'static', address: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', hostNet: '10.0.2.0/24' } as const;
const nat = { kind: 'dhcp', dns: '192.168.64.1', hostNet: '192.168.64.0/24' } as const;

test('the guest network is the driver\'s; the test switch turns fixed addresses into a DHCP lease with the same DNS and host net', () => {
  assert.deepEqual(guestNetwork(user, {}), user);
  assert.deepEqual(guestNetwork(nat, {}), nat);
  assert.deepEqual(guestNetwork(user, { [testDhcpVariable]: '1' }), { kind: 'dhcp', dns: '10.0.2.3', hostNet: '10.0.2.0/24' });
  assert.deepEqual(guestNetwork(nat, { [testDhcpVariable]: '1' }), nat);
  assert.deepEqual(guestNetwork(user, { [testDhcpVariable]: '0' }), user);
});
