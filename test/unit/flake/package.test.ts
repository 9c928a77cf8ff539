/**
 * The flake's wiring, evaluated without nixpkgs (a stand-in whose buildNpmPackage returns what it
 * was given): packages and apps for every system, the runtime tools wrapped in, the lock's
 * packages fetchable by URL, the source the build sees. Building it needs nixpkgs and a network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalJson, noModuleEval, repoRoot, vendorDir } from '../../support/nix-eval.js';

const skip = noModuleEval;
const paths = { vendor: vendorDir, repo: repoRoot };
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string; description: string; bin: Record<string, string> };
const systems = ['aarch64-darwin', 'aarch64-linux', 'x86_64-darwin', 'x86_64-linux'];

interface PackageSummary {
  name: string;
  path: string;
  pname: string;
  version: string;
  npmConfigHook: string;
  npmRebuildFlags: string[];
  npmPackFlags: string[];
  postInstall: string;
  runtimeInputs: string[];
  mainProgram: string;
  platforms: string[];
  description: string;
  lockPackageName: string;
  lockPackagesWithoutUrl: string[];
}

interface FlakeSummary {
  description: string;
  nixpkgsUrl: string;
  packages: Record<string, { default: PackageSummary }>;
  apps: Record<string, { type: string; program: string }>;
  nixosModule: string;
  darwinModule: string;
  overlay: PackageSummary;
}

test('the flake has a package and an app for each of the four systems; the modules are the module files', { skip }, () => {
  const flake = evalJson<FlakeSummary>('flake.nix', { arg: paths });
  assert.deepEqual(Object.keys(flake.packages).sort(), systems);
  assert.deepEqual(Object.keys(flake.apps).sort(), systems);
  for (const system of systems) {
    const pkg = flake.packages[system]?.default;
    assert.ok(pkg, system);
    assert.deepEqual([pkg.pname, pkg.version, pkg.description], [packageJson.name, packageJson.version, packageJson.description]);
    assert.deepEqual(pkg.platforms.slice().sort(), systems);
    // npm's install hook makes $out/bin/<bin name>; the wrapper and the app name that file
    assert.ok(Object.keys(packageJson.bin).includes(pkg.mainProgram));
    assert.deepEqual(flake.apps[system], { type: 'app', program: `${pkg.path}/bin/${pkg.mainProgram}` });
  }
  assert.equal(flake.nixosModule, join(repoRoot, 'nix', 'modules', 'nixos.nix'));
  assert.equal(flake.darwinModule, join(repoRoot, 'nix', 'modules', 'darwin.nix'));
  assert.equal(flake.overlay.name, `${packageJson.name}-${packageJson.version}`);
  assert.match(flake.nixpkgsUrl, /^github:NixOS\/nixpkgs\//);
});

test('the package: importNpmLock reads package-lock.json with a URL for every package, no install scripts, QEMU and ssh (and ss, dmesg on Linux; vfkit on Apple Silicon) on the CLI\'s PATH, not Nix', { skip }, () => {
  const flake = evalJson<FlakeSummary>('flake.nix', { arg: paths });
  for (const system of systems) {
    const pkg = flake.packages[system]?.default;
    assert.ok(pkg);
    assert.equal(pkg.npmConfigHook, 'importNpmLock.npmConfigHook');
    assert.equal(pkg.lockPackageName, packageJson.name);
    assert.deepEqual(pkg.lockPackagesWithoutUrl, []);
    assert.deepEqual([pkg.npmRebuildFlags, pkg.npmPackFlags], [['--ignore-scripts'], ['--ignore-scripts']]);
    // vfkit on Apple Silicon only: there the vfkit driver is chosen when vfkit is on PATH
    const tools = system.endsWith('-linux') ? ['qemu', 'openssh', 'iproute2', 'util-linux'] : system === 'aarch64-darwin' ? ['qemu', 'openssh', 'vfkit'] : ['qemu', 'openssh'];
    assert.deepEqual(pkg.runtimeInputs.map((name) => name.replace(/-[0-9][^-]*$/, '')), tools, system);
    const wrap = /^wrapProgram \$out\/bin\/linux-builder --prefix PATH : (\S+)$/m.exec(pkg.postInstall);
    assert.ok(wrap?.[1], pkg.postInstall);
    const dirs = wrap[1].split(':');
    assert.deepEqual(dirs.map((dir) => /^\/nix\/store\/[0-9a-f]{32}-(.+)\/bin$/.exec(dir)?.[1]), pkg.runtimeInputs);
  }
});

test('on Apple Silicon the wrapped PATH has vfkit, so the nix-darwin service runs the vfkit driver; on Linux it has none', { skip }, () => {
  const flake = evalJson<FlakeSummary>('flake.nix', { arg: paths });
  const wrappedPath = (system: string): string[] => /--prefix PATH : (\S+)$/m.exec(flake.packages[system]?.default.postInstall ?? '')?.[1]?.split(':') ?? [];
  assert.ok(wrappedPath('aarch64-darwin').some((dir) => /^\/nix\/store\/[0-9a-f]{32}-vfkit-[^/]+\/bin$/.test(dir)), wrappedPath('aarch64-darwin').join(':'));
  for (const system of ['x86_64-linux', 'aarch64-linux']) {
    const dirs = wrappedPath(system);
    assert.ok(dirs.length > 0, system);
    assert.ok(!dirs.some((dir) => dir.includes('-vfkit-')), `${system}: ${dirs.join(':')}`);
  }
});

test('npm-lock.nix puts back the registry URL npm left out, from the name (scoped, nested, aliased) and version; what has one, links and the root stay as they are', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const lockFile = join(dir, 'package-lock.json');
  const integrity = 'sha512-AAAA';
  await writeFile(lockFile, JSON.stringify({
    name: 'x', lockfileVersion: 3,
    packages: {
      '': { name: 'x', version: '1.0.0' },
      'node_modules/plain': { version: '1.2.3', integrity },
      'node_modules/@scope/pkg': { version: '0.1.0', integrity },
      'node_modules/a/node_modules/@types/node': { version: '18.19.130', integrity },
      'node_modules/alias': { name: 'real-name', version: '2.0.0', integrity },
      'node_modules/has-url': { version: '1.0.0', integrity, resolved: 'https://mirror.example/has-url-1.0.0.tgz' },
      'node_modules/local': { resolved: 'packages/local', link: true },
    },
  }));
  const resolved = evalJson<Record<string, string | null>>('npm-lock.nix', { arg: { ...paths, lockFile } });
  assert.deepEqual(resolved, {
    '': null,
    'node_modules/plain': 'https://registry.npmjs.org/plain/-/plain-1.2.3.tgz',
    'node_modules/@scope/pkg': 'https://registry.npmjs.org/@scope/pkg/-/pkg-0.1.0.tgz',
    'node_modules/a/node_modules/@types/node': 'https://registry.npmjs.org/@types/node/-/node-18.19.130.tgz',
    'node_modules/alias': 'https://registry.npmjs.org/real-name/-/real-name-2.0.0.tgz',
    'node_modules/has-url': 'https://mirror.example/has-url-1.0.0.tgz',
    'node_modules/local': 'packages/local',
  });
});

test('the package is built from the sources, bin, keys and the npm and TypeScript files; not the tests, benchmarks, docs, dist or node_modules', { skip }, () => {
  const table: [string, boolean][] = [
    ['package.json', true], ['package-lock.json', true], ['tsconfig.json', true], ['tsconfig.build.json', true],
    ['src/', true], ['src/cli/main.ts', true], ['bin/', true], ['bin/linux-builder.js', true], ['keys/', true],
    ['test/', false], ['test/unit/flake/package.test.ts', false], ['bench/', false], ['docs/', false], ['README.md', false],
    ['dist/', false], ['node_modules/', false], ['nix/', false], ['flake.nix', false], ['scripts/', false],
  ];
  const kept = evalJson<boolean[]>('source.nix', { arg: paths, argstr: { pathsJSON: JSON.stringify(table.map(([path]) => path)) } });
  assert.deepEqual(table.map(([path], i) => [path, kept[i]]), table);
});
