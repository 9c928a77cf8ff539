import { spawn } from 'node:child_process';
import { failed } from '../errors.js';
import { status } from '../instance/lifecycle.js';
import { instancePaths } from '../instance/paths.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { hostAlias } from '../ssh/config.js';

/** Runs the system ssh with the instance's own config: its key, its pinned host key. */
export async function sshCommand(name: string, command: string[]): Promise<number> {
  const s = await status(name);
  if (s.state !== 'running') {
    throw failed(`builder "${name}" is ${s.state}`, `start it first: linux-builder --name ${name} start`);
  }
  const paths = instancePaths(name);
  await ensurePrivateDir(paths.runtimeDir); // ssh keeps its shared connection there
  const args = ['-F', paths.sshConfig, ...(command.length > 0 ? [] : ['-t']), hostAlias(name), ...(command.length > 0 ? ['--', ...command] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { stdio: 'inherit' });
    child.on('error', (error) => reject(failed(`cannot run ssh: ${error.message}`, 'install openssh-client')));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
