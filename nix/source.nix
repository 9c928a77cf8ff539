# What the package is built from: the sources and what the build reads, nothing of the tests,
# benchmarks or a local dist/ and node_modules.
{ lib }:

let
  root = toString ../.;
  kept = [
    "package.json"
    "package-lock.json"
    "tsconfig.json"
    "tsconfig.build.json"
    "bin"
    "keys"
    "src"
  ];
in
lib.cleanSourceWith {
  name = "linux-builder-source";
  src = ../.;
  filter =
    path: _type:
    let
      relative = lib.removePrefix "${root}/" (toString path);
    in
    lib.elem (lib.head (lib.splitString "/" relative)) kept;
}
