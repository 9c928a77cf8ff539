import { isBlocking, runChecks } from '../doctor/checks.js';

const marks = { ok: '✓', warn: '!', fail: '✗' } as const;

export async function doctorCommand(name: string): Promise<number> {
  const checks = await runChecks(name);
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const check of checks) {
    console.log(`${marks[check.verdict]} ${check.name.padEnd(width)}  ${check.detail}`);
    if (check.fix && check.verdict !== 'ok') console.log(`  ${' '.repeat(width)}  fix: ${check.fix}`);
  }
  const blocking = isBlocking(checks);
  console.log(blocking ? '\nsomething above blocks builds through this builder' : '\nnothing blocks builds through this builder');
  return blocking ? 1 : 0;
}
