# nix/npm-lock.nix applied to a lock file: each package's resolved URL (null where none).
{
  vendor,
  repo,
  lockFile,
}:

let
  lib = import (vendor + "/nixpkgs-lib/lib");
  lock = import (repo + "/nix/npm-lock.nix") { inherit lib; } lockFile;
in
lib.mapAttrs (_: module: module.resolved or null) lock.packages
