/** agent.json: what a running agent is doing, for `status`. Written atomically on each change. */
import { z } from 'zod';
import { isAlive } from '../drivers/process.js';
import { readVersionedJsonOrUndefined, versionedFile, writeVersionedJson } from '../fs/versioned-json.js';

export const agentStateSchema = z.object({
  version: z.literal(1),
  pid: z.number().int().positive(),
  listen: z.string(),
  connections: z.number().int().min(0),
  idleSince: z.string().nullable(),
});
export type AgentState = z.infer<typeof agentStateSchema>;
const agentStateFile = versionedFile(agentStateSchema, 1);

export interface AgentStatus {
  pid: number;
  listen: string;
  connections: number;
  idleSince: string | null;
}

/** The live agent of an instance, or null when none runs (a stale file is ignored). */
export async function readAgentStatus(path: string): Promise<AgentStatus | null> {
  const state = await readVersionedJsonOrUndefined(path, agentStateFile);
  if (state === undefined || !(await isAlive(state.pid))) return null;
  return { pid: state.pid, listen: state.listen, connections: state.connections, idleSince: state.idleSince };
}

/** Coalesces bursts (20 connections at once) into the latest snapshot, one write at a time. */
export function agentStateWriter(path: string): { update(state: AgentState): void; flush(): Promise<void> } {
  let latest: AgentState | undefined;
  let writing: Promise<void> = Promise.resolve();
  let scheduled = false;
  const write = async (): Promise<void> => {
    scheduled = false;
    const snapshot = latest;
    if (snapshot) await writeVersionedJson(path, agentStateFile, snapshot).catch(() => undefined);
  };
  return {
    update(state) {
      latest = state;
      if (scheduled) return;
      scheduled = true;
      writing = writing.then(write);
    },
    flush: () => writing,
  };
}
