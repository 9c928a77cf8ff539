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
    console.log(`  ${reg.files.nixConf}: builders, builders-use-substitutes`);
    console.log(`  ${reg.files.sshConfig}: Host linux-builder-${name}`);
    console.log('Nix now sends Linux builds it cannot do itself to the builder (start it first: linux-builder start).');
    return;
  }
  console.log(`# machines line (in ${result.machinesFile}):\n${reg.machinesLine}\n`);
  console.log(`# ssh_config block (for ${reg.files.sshConfig}):\n${reg.sshBlock}`);
  console.log(`# nix.conf lines (for ${reg.files.nixConf}):\n${reg.nixConf}`);
  console.log(`# install them with: linux-builder${name === 'default' ? '' : ` --name ${name}`} nix-config --install`);
}
