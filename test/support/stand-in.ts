/**
 * The command line of a stand-in for a daemon found by its arguments (QEMU, virtiofsd): one
 * process that sleeps with those arguments on its command line. Not `sh -c 'sleep 30' …`: sh
 * forks sleep, and until the fork execs, its copy shows the same command line and is found too.
 */
export const standInArgv = (...args: string[]): string[] => [process.execPath, '-e', 'setTimeout(() => {}, 30_000)', '--', ...args];
