# The NixOS options nixos.nix sets or reads, which the vendored sources do not have, declared
# with NixOS's names and types (nixos/modules/config/nix.nix, nix-remote-build.nix,
# programs/ssh.nix, config/system-path.nix, misc/assertions.nix, lib/systemd-unit-options.nix),
# so that a misspelt option or a value of the wrong type fails the evaluation as it would there.
{ lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  unitOption = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
    (types.listOf (
      types.oneOf [
        types.bool
        types.int
        types.str
        types.path
      ]
    ))
  ];
  service = types.submodule {
    options = {
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      wantedBy = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      after = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
  };
  machine = types.submodule {
    options = {
      hostName = mkOption { type = types.str; };
      protocol = mkOption {
        type = types.enum [ null "ssh" "ssh-ng" ];
        default = "ssh";
      };
      system = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      systems = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      sshUser = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      sshKey = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      maxJobs = mkOption {
        type = types.int;
        default = 1;
      };
      speedFactor = mkOption {
        type = types.numbers.positive;
        default = 1;
      };
      mandatoryFeatures = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      supportedFeatures = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      publicHostKey = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
    };
  };
in
{
  options = {
    nix.enable = mkOption {
      type = types.bool;
      default = true;
    };
    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    nix.settings = mkOption {
      type = types.submodule { freeformType = types.attrsOf types.anything; };
      default = { };
    };
    nix.buildMachines = mkOption {
      type = types.listOf machine;
      default = [ ];
    };
    nix.distributedBuilds = mkOption {
      type = types.bool;
      default = false;
    };
    systemd.services = mkOption {
      type = types.attrsOf service;
      default = { };
    };
    programs.ssh.extraConfig = mkOption {
      type = types.lines;
      default = "";
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
  };
}
