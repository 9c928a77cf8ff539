/**
 * A test module and the checkout's modules it imports, compiled to JavaScript in a fresh
 * directory every user can read, with a copy of the npm packages they import, so a test running
 * as root can run it as another user with plain node: wherever the checkout is (under /root or
 * a 0700 home), with no tsx, and without process.setuid(), which some Node.js builds refuse
 * (Debian 13's Node.js 20: "io_uring may be enabled").
 */
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const checkout = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Imports that remain in the JavaScript (`import type` is erased): relative ones, and npm packages. */
const runtimeImports = /^(?:import|export)(?!\s+type\s)[^;]*?\sfrom\s+'([^']+)';/gm;

/** Compiles entry (a .ts file in the checkout) and what it imports; returns the .js to run and the directory to remove. */
export function compiledCopy(entry: string): { script: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lb-compiled-'));
  chmodSync(dir, 0o755);
  const write = (file: string, text: string): void => {
    writeFileSync(file, text);
    chmodSync(file, 0o644);
  };
  write(join(dir, 'package.json'), '{ "type": "module" }\n');
  const target = (source: string): string => join(dir, relative(checkout, source).replace(/\.ts$/, '.js'));
  const pending = [resolve(entry)];
  const done = new Set<string>();
  const packages = new Set<string>();
  for (let source = pending.pop(); source !== undefined; source = pending.pop()) {
    if (done.has(source)) continue;
    done.add(source);
    const text = readFileSync(source, 'utf8');
    const { outputText } = ts.transpileModule(text, {
      fileName: source,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    for (let parent = dirname(target(source)); parent.startsWith(`${dir}/`); parent = dirname(parent)) {
      mkdirSync(parent, { recursive: true });
      chmodSync(parent, 0o755);
    }
    write(target(source), outputText);
    for (const [, specifier = ''] of text.matchAll(runtimeImports)) {
      if (specifier.startsWith('.')) pending.push(resolve(dirname(source), specifier.replace(/\.js$/, '.ts')));
      else if (!specifier.startsWith('node:')) packages.add(packageName(specifier));
    }
  }
  copyPackages(packages, join(dir, 'node_modules'));
  return { script: target(resolve(entry)), dir };
}

/** "tar-stream" → "tar-stream", "@scope/name/sub" → "@scope/name". */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/** The packages and the packages they depend on, copied from the checkout's node_modules (modes kept). */
function copyPackages(names: Iterable<string>, into: string): void {
  const pending = [...names];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    const copy = join(into, name);
    if (existsSync(copy)) continue;
    const source = join(checkout, 'node_modules', name);
    if (!existsSync(source)) continue; // an optional dependency not installed here
    for (const parent of [into, dirname(copy)]) {
      mkdirSync(parent, { recursive: true });
      chmodSync(parent, 0o755);
    }
    cpSync(realpathSync(source), copy, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    pending.push(...Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies }));
  }
}
