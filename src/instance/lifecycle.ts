/**
 * The one orchestration path for every driver, as the CLI calls it: start (start.ts), stop
 * (stop.ts), status (status.ts), and settling a VM that exited on its own (leftovers.ts).
 * Drivers only launch, inspect and stop their hypervisor. The agent calls the same functions from
 * their own modules, so it loads start and stop only when it first boots or stops a VM.
 */
export { start, dryRun, BootFailure, type DryRun, type StartOptions, type StartResult } from './start.js';
export { stop, type StopOptions, type StopResult } from './stop.js';
export { status, type InstanceState, type InstanceStatus } from './status.js';
export { settleExitedVm } from './leftovers.js';
export { consoleTail } from './console.js';
export { storeSyncFor } from './ssh-access.js';
export { silentReporter, type Phase, type Reporter } from './reporter.js';
