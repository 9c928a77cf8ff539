/** How a long operation tells its caller what it is doing: the CLI prints it, the agent logs it. */
export type Phase = 'waiting for another start' | 'preparing userland' | 'preparing kernel' | 'building image' | 'booting' | 'waiting for SSH' | 'registering host store paths';

export interface Reporter {
  /** A new phase of a long operation began. */
  phase(phase: Phase): void;
  /** A line the user should see (e.g. why TCG was chosen). */
  info(line: string): void;
  /** Detail shown with --verbose. */
  detail(line: string): void;
  /** How far a long step is (the first fetch of Debian's packages), replacing the last such line. */
  progress?(line: string): void;
}

export const silentReporter: Reporter = { phase() {}, info() {}, detail() {} };
