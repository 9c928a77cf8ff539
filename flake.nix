{
  description = "linux-builder: a Linux builder VM for Nix, started on the first build that needs it, stopped when idle";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
        "x86_64-darwin"
      ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forEachSystem (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      apps = forEachSystem (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/linux-builder";
          meta.description = "linux-builder's CLI";
        };
      });

      # nix flake check wants the arguments named final and prev.
      overlays.default = final: prev: {
        linux-builder = final.callPackage ./nix/package.nix { };
      };

      # Their package defaults to nix/package.nix built with the configured system's own nixpkgs.
      nixosModules.default = ./nix/modules/nixos.nix;
      darwinModules.default = ./nix/modules/darwin.nix;
    };
}
