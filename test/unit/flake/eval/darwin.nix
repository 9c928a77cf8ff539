# nix-darwin's own modules (all of them, from the vendored copy) with darwin.nix and the given
# config, evaluated by the module system; returns what the tests check, as JSON.
{
  vendor,
  repo,
  system ? "aarch64-darwin",
  configJSON,
}:

let
  lib = import (vendor + "/nixpkgs-lib/lib");
  modules = vendor + "/nix-darwin/modules";
  pkgs = import ./stub-pkgs.nix { inherit lib system; };
  given = builtins.fromJSON configJSON;
  name = given.services.linux-builder.name or "default";
  evaluated =
    lib.evalModules {
      modules = import (modules + "/module-list.nix") ++ [
        (repo + "/nix/modules/darwin.nix")
        {
          _module.args.pkgs = lib.mkForce pkgs;
          nixpkgs.source = ./.;
          system.stateVersion = 6;
          services.linux-builder.package = pkgs.linux-builder;
        }
        given
      ];
      specialArgs.modulesPath = modules;
    };
  c = evaluated.config;
  # nix-darwin's own packages need more of nixpkgs than the stub has: only ours are looked at.
  ourPackages = lib.concatMap (d: map (p: p.name) d.value) (
    lib.filter (d: lib.hasSuffix "/nix/modules/common.nix" (toString d.file)) evaluated.options.environment.systemPackages.definitionsWithLocations
  );
  withoutNulls = lib.filterAttrsRecursive (_: v: v != null);
  enabled = c.services.linux-builder.enable;
in
{
  packagePath = pkgs.linux-builder.outPath;
  nixPath = pkgs.nix.outPath;
  daemon = if enabled then withoutNulls c.launchd.daemons."linux-builder-${name}".serviceConfig else null;
  plistFiles = lib.attrNames c.environment.launchDaemons;
  plistText = c.environment.launchDaemons."org.linux-builder.${name}.plist".text or null;
  machines = c.environment.etc."nix/machines".text or null;
  nixConf = c.environment.etc."nix/nix.conf".source.text or null;
  sshConfig = c.environment.etc."ssh/ssh_config.d/100-linux-builder-${name}.conf".text or null;
  preActivation = c.system.activationScripts.preActivation.text;
  systemPackages = ourPackages;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  inherit (c) warnings;
}
