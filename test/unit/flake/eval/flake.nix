# flake.nix's outputs with a stand-in nixpkgs (the vendored lib and stub packages; its
# buildNpmPackage and importNpmLock return what they were given): the wiring of packages, apps
# and modules for every system, without nixpkgs or a network.
{ vendor, repo }:

let
  lib = import (vendor + "/nixpkgs-lib/lib");
  flake = import (repo + "/flake.nix");
  systems = [
    "x86_64-linux"
    "aarch64-linux"
    "aarch64-darwin"
    "x86_64-darwin"
  ];
  packagesFor =
    system:
    let
      stub = import ./stub-pkgs.nix { inherit lib system; };
      pkgs = stub // {
        callPackage = lib.callPackageWith pkgs;
        makeWrapper = stub.placeholder "make-wrapper" "";
        qemu = stub.placeholder "qemu-10.0.0" "10.0.0";
        openssh = stub.placeholder "openssh-10.0p2" "10.0p2";
        iproute2 = stub.placeholder "iproute2-6.14.0" "6.14.0";
        util-linux = stub.placeholder "util-linux-2.41" "2.41";
        vfkit = stub.placeholder "vfkit-0.6.1" "0.6.1";
        importNpmLock = {
          __functor = _: args: { importNpmLockArgs = args; };
          npmConfigHook = "importNpmLock.npmConfigHook";
        };
        buildNpmPackage =
          args:
          stub.placeholder "${args.pname}-${args.version}" args.version
          // {
            inherit args;
            inherit (args) meta passthru;
          };
      };
    in
    pkgs;
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems packagesFor;
  };
  outputs = lib.fix (self: flake.outputs { inherit self nixpkgs; });
  summary = package: {
    inherit (package) name;
    path = package.outPath;
    inherit (package.args)
      pname
      version
      npmConfigHook
      npmRebuildFlags
      npmPackFlags
      postInstall
      ;
    runtimeInputs = map (p: p.name) package.passthru.runtimeInputs;
    inherit (package.meta) mainProgram platforms description;
    lockPackageName = package.args.npmDeps.importNpmLockArgs.package.name;
    lockPackagesWithoutUrl = lib.attrNames (
      lib.filterAttrs (key: module: key != "" && !(module ? resolved)) package.args.npmDeps.importNpmLockArgs.packageLock.packages
    );
  };
  overlaid = (outputs.overlays.default (packagesFor "x86_64-linux") { }).linux-builder;
in
{
  inherit (flake) description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  packages = lib.mapAttrs (_: p: lib.mapAttrs (_: summary) p) outputs.packages;
  apps = lib.mapAttrs (_: a: { inherit (a.default) type program; }) outputs.apps;
  nixosModule = toString outputs.nixosModules.default;
  darwinModule = toString outputs.darwinModules.default;
  overlay = summary overlaid;
}
