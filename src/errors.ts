/**
 * Errors a user can fix carry a hint and an exit code: 2 for bad input, 1 for a failed
 * operation. The CLI prints them without a stack; anything else is an internal error.
 */
export type ExitCode = 1 | 2;

export class UserError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;

  constructor(message: string, options: { hint?: string; exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserError';
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Bad input: exit 2. */
export function badInput(message: string, hint?: string): UserError {
  return new UserError(message, hint === undefined ? { exitCode: 2 } : { hint, exitCode: 2 });
}

/** A failed operation: exit 1. */
export function failed(message: string, hint?: string, cause?: unknown): UserError {
  return new UserError(message, { exitCode: 1, ...(hint === undefined ? {} : { hint }), cause });
}

export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}
