/**
 * The entry point: parses argv, runs one command, maps errors to exit codes. Only here exits.
 * Each command's module is imported when it runs, so `status` or `--version` never load what
 * `start` needs (OpenPGP, SSH, the image builder).
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import { validateInstanceName } from '../instance/paths.js';
import { printError } from './output.js';
import { packageVersion } from './version.js';

/** The VM's settings, taken by start and serve alike and remembered for the instance. */
function withSettings(command: Command): Command {
  return command
    .option('--cores <n>', 'virtual CPUs, or auto: all host cores up to 8 (remembered; default auto)')
    .option('--memory <size>', 'guest memory, e.g. 2048 or 4G, or auto: a quarter of host memory up to 2G (remembered; default auto)')
    .addOption(new Option('--accel <accel>', 'accelerator (remembered)').choices(['auto', 'kvm', 'hvf', 'tcg']))
    .option('--kernel <path>', 'boot this kernel image instead of the host\'s or the distribution\'s (remembered)')
    .option('--boot-timeout <duration>', 'give up when not ready after this long, e.g. 60s, 2m (remembered; default 120s)')
    .addOption(new Option('--arch <arch>', "the guest's CPU architecture; another than the host's runs under TCG and needs the debian userland (remembered; default the host's)").choices(['x86_64', 'aarch64']))
    .option('--systems <list>', 'Nix systems to build, comma-separated (remembered; default for an x86_64 guest: x86_64-linux,i686-linux,aarch64-linux; aarch64: aarch64-linux,x86_64-linux,i686-linux)')
    .option('--disk-size <size>', 'the instance disk (sparse), e.g. 40G; grows an existing disk, never shrinks it (remembered; default 40G)')
    .option('--ephemeral', 'wipe the disk at every start, so nothing built survives a restart (remembered)')
    .option('--no-ephemeral', 'keep the disk across restarts again (the default)')
    .addOption(new Option('--userland <userland>', "the guest's /usr, kernel, busybox and sshd: the host's, Debian's packages fetched into the cache, or auto: host on a Debian or Ubuntu host that has them (remembered; default auto)").choices(['auto', 'host', 'debian']))
    .option('--mirror <url>', 'the Debian mirror for --userland debian (remembered; default http://deb.debian.org/debian)')
    .addOption(new Option('--driver <driver>', 'the hypervisor: vfkit on an Apple Silicon Mac that has it, QEMU elsewhere (auto), or the one named (remembered; default auto)').choices(['auto', 'qemu', 'vfkit']))
    .option('--rosetta', "run x86_64-linux builds through Apple's Rosetta where the driver shares it (vfkit; remembered; the default)")
    .option('--no-rosetta', 'run x86_64-linux builds under qemu-user in the guest instead of Rosetta (remembered)');
}

function program(): Command {
  let exitCode = 0;
  const cli = new Command('linux-builder')
    .description('A Linux builder VM for Nix: QEMU on Linux, vfkit on macOS, started on demand, reachable over pinned SSH.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--name <name>', 'instance name (a plain word); every instance is independent', 'default')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text.startsWith('error:') ? `linux-builder: ${text}` : text) });
  const name = (): string => validateInstanceName(cli.opts<{ name: string }>().name);

  withSettings(cli.command('start').description('start the builder VM and wait until SSH works (already running: says so)'))
    .option('--dry-run', "prepare everything a launch needs (keys, disk, kernel, guest image) and print the hypervisor's command line instead of running it; remembers no setting (off macOS the only way to use --driver vfkit)")
    .option('--json', 'with --dry-run: print {"driver": …, "argv": […]}')
    .option('--verbose', 'show what is done and why')
    .action(async (options) => (await import('./start.js')).startCommand(name(), options));
  cli
    .command('stop')
    .description('power the guest off (at most 30 s), then kill it; already stopped: exit 0')
    .option('--force', 'kill the VM at once')
    .option('--verbose', 'show what is done')
    .action(async (options) => (await import('./stop.js')).stopCommand(name(), options));
  cli
    .command('status')
    .description('show whether the builder is stopped, starting, running or broken, and why')
    .option('--json', 'print machine-readable JSON (schema in the README)')
    .action(async (options) => {
      exitCode = await (await import('./status.js')).statusCommand(name(), options);
    });
  cli
    .command('ssh')
    .description('open a shell in the guest, or run a command: linux-builder ssh -- uname -m')
    .argument('[command...]', 'command to run in the guest')
    .allowExcessArguments()
    .action(async (command: string[]) => {
      exitCode = await (await import('./ssh.js')).sshCommand(name(), command);
    });
  cli
    .command('logs')
    .description("print the guest's console, or the agent's event log")
    .option('-f, --follow', 'keep printing new lines')
    .option('--agent', "the agent's JSON-lines event log instead of the console")
    .action(async (options) => (await import('./logs.js')).logsCommand(name(), options));

  cli
    .command('nix-config')
    .description("print (or install) what makes the host's Nix use this builder: machines line, ssh_config block, nix.conf lines (as root: /etc/nix/machines, which a running nix-daemon reads at every build)")
    .option('--install', 'write them where Nix and ssh read them, between marker lines (twice = once)')
    .option('--uninstall', 'remove exactly what --install added')
    .addOption(new Option('--scope <scope>', 'user files (~/.config/nix, ~/.ssh) or system files (/etc/nix, /etc/ssh); default: system as root').choices(['user', 'system']))
    .option('--nix-conf <file>', 'edit this nix.conf instead')
    .option('--ssh-config <file>', 'edit this ssh_config instead')
    .action(async (options) => (await import('./nix-config.js')).nixConfigCommand(name(), options));

  withSettings(cli.command('serve').description('run the on-demand agent in the foreground: boots the VM on the first SSH connection, stops it when idle'))
    .option('--listen <host:port>', 'loopback address to listen on (remembered; default 127.0.0.1 and a free port kept for the instance)')
    .option('--idle-timeout <duration>', 'stop the VM after no connection for this long, e.g. 90s, 20m, 3h (remembered; default 3h)')
    .option('--verbose', 'show boot phases')
    .action(async (options) => (await import('./serve.js')).serveCommand(name(), options));

  // The agent's child that owns one VM from boot to stop (src/agent/vm-session.ts); not for users.
  cli
    .command('vm-session', { hidden: true })
    .option('--reason <text>', 'why the VM boots', 'a connection')
    .option('--since <ms>', 'when the agent decided to boot (ms since the epoch): boot-ready counts from there')
    .action(async (options: { reason: string; since?: string }) => {
      await (await import('../agent/vm-session.js')).runVmSession(name(), options.reason, Number(options.since ?? Date.now()));
      // The agent waits for this process to end before it boots again: nothing left open keeps it.
      setTimeout(() => process.exit(), 5000).unref();
    });

  cli
    .command('service')
    .description('run the on-demand agent (serve) under systemd or launchd: install, uninstall or status')
    .addArgument(new Argument('<action>', 'what to do').choices(['install', 'uninstall', 'status']))
    .addOption(new Option('--scope <scope>', 'user or system service; default: system as root, user otherwise').choices(['user', 'system']))
    .option('--unit-dir <dir>', "write the unit or plist into this directory instead; not loaded unless it is the manager's own (packaging, tests)")
    .action(async (action: 'install' | 'uninstall' | 'status', options: { scope?: 'user' | 'system'; unitDir?: string }) => {
      exitCode = await (await import('./service.js')).serviceCommand(name(), action, options);
    });

  cli
    .command('doctor')
    .description('check everything a build through this builder needs, and say how to fix what is missing')
    .action(async () => {
      exitCode = await (await import('./doctor.js')).doctorCommand(name());
    });

  cli.hook('postAction', () => {
    process.exitCode = exitCode;
  });
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      return 2;
    }
    return printError(error);
  }
}

process.exitCode = await main(process.argv);
