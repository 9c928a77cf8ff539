/** How the CLI talks: errors as one line plus a hint, progress phases on a TTY. */
import { UserError } from '../errors.js';
import type { Phase, Reporter } from '../instance/lifecycle.js';

export function printError(error: unknown): number {
  if (error instanceof UserError) {
    process.stderr.write(`linux-builder: ${error.message}\n`);
    if (error.hint) process.stderr.write(`hint: ${error.hint}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`linux-builder: internal error: ${message}\n`);
  process.stderr.write('hint: this is a bug; please report it with the command you ran\n');
  return 1;
}

export function terminalReporter(options: { verbose: boolean }): Reporter {
  const tty = process.stderr.isTTY === true;
  const t0 = Date.now();
  const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
  return {
    phase(phase: Phase) {
      if (tty || options.verbose) process.stderr.write(`${stamp()}  ${phase}…\n`);
    },
    info(line: string) {
      process.stderr.write(`${line}\n`);
    },
    detail(line: string) {
      if (options.verbose) process.stderr.write(`${stamp()}    ${line}\n`);
    },
  };
}
