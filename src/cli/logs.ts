import { open } from 'node:fs/promises';
import { failed } from '../errors.js';
import { instancePaths } from '../instance/paths.js';

/** Prints the guest console; with follow, keeps printing what is appended until interrupted. */
export async function logsCommand(name: string, options: { follow?: boolean; agent?: boolean }): Promise<void> {
  const paths = instancePaths(name);
  const path = options.agent ? paths.agentLog : paths.consoleLog;
  let offset = 0;
  const drain = async (): Promise<boolean> => {
    const handle = await open(path, 'r').catch(() => undefined);
    if (!handle) return false;
    try {
      const { size } = await handle.stat();
      if (size < offset) offset = 0; // a new boot truncated the console
      while (offset < size) {
        const buffer = Buffer.alloc(Math.min(1 << 16, size - offset));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        process.stdout.write(buffer.subarray(0, bytesRead));
        offset += bytesRead;
      }
    } finally {
      await handle.close();
    }
    return true;
  };
  const found = await drain();
  if (!options.follow) {
    if (!found) {
      throw failed(
        `no ${options.agent ? 'agent log' : 'console log'} for "${name}" yet (${path})`,
        options.agent ? `run the agent: linux-builder --name ${name} serve` : `start it: linux-builder --name ${name} start`,
      );
    }
    return;
  }
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    await drain();
  }
}
