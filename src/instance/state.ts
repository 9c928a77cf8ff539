/**
 * state.json: what is running now. Written when a VM is launched, updated when it is ready,
 * removed when it is stopped. Versioned and written atomically.
 */
import { z } from 'zod';
import { readVersionedJson, type JsonRead, versionedFile, writeVersionedJson } from '../fs/versioned-json.js';
import { loopbackHost, sshEndpointSchema } from '../ssh/endpoint.js';

export const runStateVersion = 1;

export const runStateSchema = z.object({
  version: z.literal(runStateVersion),
  phase: z.enum(['starting', 'running']),
  pid: z.number().int().positive(),
  driver: z.enum(['qemu', 'vfkit']),
  /** The guest's architecture; absent in state files of earlier versions: the host's. */
  arch: z.enum(['x86_64', 'aarch64']).optional(),
  accel: z.enum(['kvm', 'hvf', 'tcg']),
  accelReason: z.string(),
  cores: z.number().int().positive(),
  memoryMiB: z.number().int().positive(),
  systems: z.array(z.string()),
  /** Where the VM's sshd is reached from the host. */
  ssh: sshEndpointSchema,
  /** How the VM's shares reach the guest; absent in state files of earlier versions: 9p. */
  shares: z.enum(['virtiofs', '9p']).optional(),
  startedAt: z.string(),
  bootSeconds: z.number().nullable(),
  kernel: z.string(),
  initrd: z.string(),
  /** The guest's /usr: the host's or a Debian tree; absent in state files of earlier versions. */
  userland: z.object({
    kind: z.enum(['host', 'debian']),
    description: z.string(),
    usr: z.string(),
    tree: z.string().regex(/^[0-9a-f]{32}$/).optional(),
  }).optional(),
});
export type RunState = z.infer<typeof runStateSchema>;

/** Files written before the endpoint had a kind said only sshPort: a forwarded loopback port. */
function withEndpoint(json: unknown): unknown {
  if (typeof json !== 'object' || json === null || 'ssh' in json || !('sshPort' in json)) return json;
  const { sshPort, ...rest } = json as Record<string, unknown>;
  return { ...rest, ssh: { kind: 'tcp', host: loopbackHost, port: sshPort } };
}

export const runStateFile = versionedFile(z.preprocess(withEndpoint, runStateSchema), runStateVersion);

/** A state.json of a newer linux-builder counts as corrupt: the advice (stop its VM, or let start replace it) is the same. */
export async function readRunState(path: string): Promise<Exclude<JsonRead<RunState>, { kind: 'newer' }>> {
  const read = await readVersionedJson(path, runStateFile);
  return read.kind === 'newer' ? { kind: 'corrupt', reason: read.reason } : read;
}

export async function writeRunState(path: string, state: RunState): Promise<void> {
  await writeVersionedJson(path, runStateFile, state);
}
