/** Which driver an instance's VM runs on, for commands that act on it (stop, status, the agent). */
import { driverNamed, selectDriver } from '../drivers/index.js';
import type { Driver } from '../drivers/driver.js';
import { loadSettings } from './identity.js';
import type { InstancePaths } from './paths.js';
import { readRunState } from './state.js';

/** The driver the running VM was started with (state.json), else the remembered --driver; never throws. */
export async function instanceDriver(paths: InstancePaths): Promise<Driver> {
  const read = await readRunState(paths.state).catch(() => undefined);
  if (read?.kind === 'ok') return driverNamed(read.value.driver);
  const settings = await loadSettings(paths).catch(() => undefined);
  try {
    return selectDriver(settings?.driver);
  } catch {
    // a remembered --driver that cannot run here: its VM cannot be running here either
    return selectDriver();
  }
}
