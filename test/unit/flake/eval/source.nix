# nix/source.nix's filter on the given repository paths (relative; directories end with "/").
{
  vendor,
  repo,
  pathsJSON,
}:

let
  lib = import (vendor + "/nixpkgs-lib/lib");
  source = import (repo + "/nix/source.nix") { inherit lib; };
in
map (
  path:
  source.filter "${toString repo}/${lib.removeSuffix "/" path}" (
    if lib.hasSuffix "/" path then "directory" else "regular"
  )
) (builtins.fromJSON pathsJSON)
