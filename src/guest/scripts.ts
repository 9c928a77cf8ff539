/**
 * The guest's shell scripts are real files (scripts/*.sh, shipped beside the compiled code) with
 * a few @NAME@ placeholders, filled here. A placeholder alone on its line takes a list of lines,
 * indented as it is (an empty list becomes `:`, so an `if` or `case` arm stays valid shell);
 * elsewhere it takes a string. @SETTINGS@ takes shell assignments: every fixed path and name
 * the script uses comes from one place in TypeScript. A placeholder left unfilled, or a value
 * the script does not use, is an error: the script and its renderer cannot drift apart.
 */
import { readFileSync } from 'node:fs';

export type ScriptName = 'rc.builder' | 'collect-garbage' | 'nix-daemon' | 'nix-daemon-spares' | 'init' | 'udhcpc' | 'shutdown' | 'power-button';
export type ScriptValue = string | readonly string[];

const placeholder = /@([A-Z][A-Z0-9_]*)@/g;

export function scriptTemplate(name: ScriptName): string {
  return readFileSync(new URL(`./scripts/${name}.sh`, import.meta.url), 'utf8');
}

/** A value for `name=value` in sh: quoted unless it is plainly safe. */
export function shellWord(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Lines of `name=value` for @SETTINGS@. */
export function shellAssignments(values: Readonly<Record<string, string>>): string[] {
  return Object.entries(values).map(([name, value]) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a shell variable name: ${name}`);
    return `${name}=${shellWord(value)}`;
  });
}

export function renderTemplate(template: string, values: Readonly<Record<string, ScriptValue>>, what = 'script'): string {
  const used = new Set<string>();
  const value = (name: string): ScriptValue => {
    const found = values[name];
    if (found === undefined) throw new Error(`${what}: no value for @${name}@`);
    used.add(name);
    return found;
  };
  const lines = template.split('\n').flatMap((line) => {
    const alone = /^(\s*)@([A-Z][A-Z0-9_]*)@$/.exec(line);
    if (alone) {
      const [, indent = '', name = ''] = alone;
      const found = value(name);
      const list = typeof found === 'string' ? [found] : found.length > 0 ? found : [':'];
      return list.map((item) => `${indent}${item}`);
    }
    return [
      line.replace(placeholder, (_, name: string) => {
        const found = value(name);
        if (typeof found !== 'string') throw new Error(`${what}: @${name}@ takes lines, so it must be alone on its line`);
        return found;
      }),
    ];
  });
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (unused.length > 0) throw new Error(`${what}: no @${unused.join('@, @')}@ in the template`);
  return lines.join('\n');
}

export function renderScript(name: ScriptName, values: Readonly<Record<string, ScriptValue>>): string {
  return renderTemplate(scriptTemplate(name), values, `${name}.sh`);
}
