/**
 * state.json: what is running now. Written when a VM is launched, updated when it is ready,
 * removed when it is stopped. Versioned and written atomically.
 */
import { z } from 'zod';
import { writeFileAtomic, readTextIfExists } from '../fs/files.js';
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
});
export type RunState = z.infer<typeof runStateSchema>;

/** Files written before the endpoint had a kind said only sshPort: a forwarded loopback port. */
function withEndpoint(json: unknown): unknown {
  if (typeof json !== 'object' || json === null || 'ssh' in json || !('sshPort' in json)) return json;
  const { sshPort, ...rest } = json as Record<string, unknown>;
  return { ...rest, ssh: { kind: 'tcp', host: loopbackHost, port: sshPort } };
}

export type ReadResult<T> = { kind: 'missing' } | { kind: 'ok'; value: T } | { kind: 'corrupt'; reason: string };

export async function readRunState(path: string): Promise<ReadResult<RunState>> {
  let text: string | undefined;
  try {
    text = await readTextIfExists(path);
  } catch (error) {
    return { kind: 'corrupt', reason: `cannot read ${path}: ${(error as Error).message}` };
  }
  if (text === undefined) return { kind: 'missing' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'corrupt', reason: `${path} is not valid JSON` };
  }
  const parsed = runStateSchema.safeParse(withEndpoint(json));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: 'corrupt', reason: `${path} is invalid (${issue?.path.join('.') ?? ''}: ${issue?.message ?? '?'})` };
  }
  return { kind: 'ok', value: parsed.data };
}

export async function writeRunState(path: string, state: RunState): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
}
