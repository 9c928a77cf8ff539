# Just enough of a nixpkgs package set to evaluate the modules without nixpkgs: the platform,
# text files (kept as their text), and placeholder packages with a name and a store path.
{ lib, system }:

let
  placeholder =
    name: version:
    lib.fix (self: {
      type = "derivation";
      inherit name version;
      pname = lib.getName name;
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
      out = self;
      outputs = [ "out" ];
      meta = { };
    });
  textFile = name: text: placeholder name "" // { inherit text; };
  platform = lib.systems.elaborate system;
in
{
  inherit lib placeholder;
  stdenv = {
    shell = "/bin/sh";
    hostPlatform = platform;
    buildPlatform = platform;
    targetPlatform = platform;
  };
  callPackage = path: _args: placeholder (baseNameOf path) "";
  writeText = textFile;
  writeScript = textFile;
  writeTextFile = { name, text, ... }: textFile name text;
  nix = placeholder "nix-2.28.0" "2.28.0";
  linux-builder = placeholder "linux-builder-0.1.0" "0.1.0";
}
