import { status } from '../instance/status.js';
import { hostArch } from '../platform/host.js';
import { describeEndpoint } from '../ssh/endpoint.js';

export async function statusCommand(name: string, options: { json?: boolean }): Promise<number> {
  const s = await status(name);
  if (options.json) {
    console.log(JSON.stringify(s, null, 2));
  } else {
    console.log(`${s.name}: ${s.state}`);
    if (s.pid !== null) console.log(`  pid        ${s.pid}`);
    console.log(`  arch       ${s.arch}${s.arch === hostArch() ? '' : ` (emulated on this ${hostArch()} host)`}`);
    if (s.userland) console.log(`  userland   ${s.userland.kind}: ${s.userland.description}${s.userland.tree ? `, tree ${s.userland.tree}` : ''}`);
    if (s.accel) console.log(`  driver     ${s.driver} (${s.accel}), ${s.cores} cores, ${s.memoryMiB} MiB`);
    if (s.systems.length > 0) console.log(`  systems    ${s.systems.join(', ')}`);
    if (s.shares && s.state !== 'stopped') console.log(`  shares     ${s.shares} (/usr, /nix/store)`);
    if (s.ssh) console.log(`  ssh        ${s.ssh.user}@${describeEndpoint(s.ssh)} (host key alias ${s.ssh.hostKeyAlias})`);
    if (s.bootSeconds !== null) console.log(`  booted in  ${s.bootSeconds} s at ${s.startedAt}`);
    if (s.agent) console.log(`  agent      pid ${s.agent.pid} on ${s.agent.listen}, ${s.agent.connections} connection(s)${s.agent.idleSince ? `, idle since ${s.agent.idleSince}` : ''}`);
    // The previous VM's end is news only while none runs.
    if (s.lastExit && s.state !== 'running') console.log(`  last exit  ${s.lastExit.at}: ${s.lastExit.reason} (pid ${s.lastExit.pid}${s.lastExit.requested ? '' : ', not requested'})`);
    console.log(`  state dir  ${s.stateDir}`);
    for (const reason of s.reasons) console.log(`  note       ${reason}`);
  }
  return s.state === 'broken' ? 1 : 0;
}
