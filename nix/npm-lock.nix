# package-lock.json with the registry URL of every package put back where npm left it out
# (npm does with omit-lockfile-registry-resolved): importNpmLock fetches each package from its
# "resolved" URL and checks it against its "integrity".
{ lib }:

lockFile:

let
  lock = lib.importJSON lockFile;

  # "node_modules/a/node_modules/@scope/b" is @scope/b; an aliased package names itself.
  packageName = key: module: module.name or (lib.last (lib.splitString "node_modules/" key));

  # The npm registry's tarball URL: <name>/-/<name without its scope>-<version>.tgz
  tarball =
    name: version:
    "https://registry.npmjs.org/${name}/-/${lib.last (lib.splitString "/" name)}-${version}.tgz";

  withUrl =
    key: module:
    if key == "" || module ? resolved || module.link or false || !(module ? integrity) then
      module
    else
      module // { resolved = tarball (packageName key module) module.version; };
in
lock // { packages = lib.mapAttrs withUrl lock.packages; }
