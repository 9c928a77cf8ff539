import { badInput } from '../errors.js';
import { nixConfig } from '../nix/commands.js';
import type { Scope } from '../nix/registration.js';

export interface NixConfigOptions {
  install?: boolean;
  uninstall?: boolean;
  scope?: Scope;
  nixConf?: string;
  sshConfig?: string;
}

export async function nixConfigCommand(name: string, options: NixConfigOptions): Promise<void> {
  if (options.install && options.uninstall) throw badInput('--install and --uninstall exclude each other');
  const mode = options.install ? 'install' : options.uninstall ? 'uninstall' : 'print';
  const result = await nixConfig(name, mode, {
    scope: options.scope,
    overrides: { nixConf: options.nixConf, sshConfig: options.sshConfig },
  });
  if (result.kind === 'uninstalled') {
    console.log(result.touched.length > 0 ? `removed builder "${name}" from ${result.touched.join(' and ')}` : `builder "${name}" was not installed`);
    return;
  }
  const { reg } = result;
  if (result.kind === 'installed') {
    console.log(`builder "${name}" installed (${reg.scope} scope):`);
    if (reg.machinesBlock !== undefined) {
      console.log(`  ${reg.files.machines}: ${reg.machinesBlock.trim()} (Nix reads it at every build)`);
      console.log(`  ${reg.files.nixConf}: builders-use-substitutes`);
    } else {
      console.log(`  ${reg.files.nixConf}: builders, builders-use-substitutes`);
    }
    console.log(`  ${reg.files.sshConfig}: Host linux-builder-${name}`);
    const { daemon } = result;
    if (daemon.kind === 'reads-machines-file') console.log(`The running nix-daemon uses the builder from its next build on: it reads ${reg.files.machines} at every build.`);
    if (daemon.kind === 'restarted') console.log(`Restarted the nix-daemon (${daemon.command}): it reads builders from nix.conf only at its start.`);
    if (daemon.kind === 'restart-needed') {
      console.error(`warning: a nix-daemon is running and reads builders from nix.conf only at its start; it will not use the builder until restarted (${daemon.command}: ${daemon.why})`);
      console.error(`hint: restart nix-daemon the way it was started, e.g. sudo ${daemon.command}`);
    }
    console.log('Nix now sends Linux builds it cannot do itself to the builder (start it first: linux-builder start).');
    return;
  }
  console.log(`# machines line (in ${result.machinesFile}):\n${reg.machinesLine}\n`);
  console.log(`# ssh_config block (for ${reg.files.sshConfig}):\n${reg.sshBlock}`);
  console.log(`# nix.conf lines (for ${reg.files.nixConf}):\n${reg.nixConf}`);
  if (reg.machinesBlock !== undefined) console.log(`# machines file lines (for ${reg.files.machines}, which Nix's builders name and read at every build):\n${reg.machinesBlock}`);
  console.log(`# install them with: linux-builder${name === 'default' ? '' : ` --name ${name}`} nix-config --install`);
}
