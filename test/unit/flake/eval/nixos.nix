# nixos.nix with the given config, evaluated by the module system with the vendored lib and
# nixos-options.nix standing in for the NixOS options it touches; returns what the tests check.
{
  vendor,
  repo,
  system ? "x86_64-linux",
  configJSON,
}:

let
  lib = import (vendor + "/nixpkgs-lib/lib");
  pkgs = import ./stub-pkgs.nix { inherit lib system; };
  given = builtins.fromJSON configJSON;
  name = given.services.linux-builder.name or "default";
  c =
    (lib.evalModules {
      modules = [
        ./nixos-options.nix
        (repo + "/nix/modules/nixos.nix")
        {
          _module.args.pkgs = pkgs;
          services.linux-builder.package = pkgs.linux-builder;
        }
        given
      ];
    }).config;
  service = c.systemd.services."linux-builder-${name}" or null;
in
{
  packagePath = pkgs.linux-builder.outPath;
  nixPath = pkgs.nix.outPath;
  services = lib.attrNames c.systemd.services;
  service =
    if service == null then
      null
    else
      {
        inherit (service) description wantedBy after serviceConfig;
        path = map toString service.path;
      };
  sshExtraConfig = c.programs.ssh.extraConfig;
  buildMachines = c.nix.buildMachines;
  inherit (c.nix) distributedBuilds settings;
  systemPackages = map (p: p.name) c.environment.systemPackages;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  inherit (c) warnings;
}
