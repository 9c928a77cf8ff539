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
  let progressOpen = false;
  let progressShownAt = 0;
  let lastStage: string | undefined;
  const endProgress = (): void => {
    if (progressOpen) process.stderr.write('\n');
    progressOpen = false;
  };
  return {
    phase(phase: Phase) {
      endProgress();
      if (tty || options.verbose) process.stderr.write(`${stamp()}  ${phase}…\n`);
    },
    info(line: string) {
      endProgress();
      process.stderr.write(`${line}\n`);
    },
    detail(line: string) {
      endProgress();
      if (options.verbose) process.stderr.write(`${stamp()}    ${line}\n`);
    },
    progress(line: string) {
      // a terminal shows the line in place, at most 5 times a second; a log only with --verbose, at each new stage
      const now = Date.now();
      if (tty) {
        if (now - progressShownAt < 200 && !/ (\d+)\/\1\b/.test(line)) return;
        progressShownAt = now;
        process.stderr.write(`\r${stamp()}    ${line}\x1b[K`);
        progressOpen = true;
      } else if (options.verbose && line.split(/ \d/)[0] !== lastStage) {
        lastStage = line.split(/ \d/)[0];
        process.stderr.write(`${stamp()}    ${line}\n`);
      }
    },
  };
}
