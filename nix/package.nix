# The CLI as a Nix package: nixpkgs' buildNpmPackage with importNpmLock, which fetches each
# package package-lock.json pins and checks it against the lock's integrity hash, so there is no
# npmDepsHash to keep in step with the lock.
{
  lib,
  stdenv,
  buildNpmPackage,
  importNpmLock,
  makeWrapper,
  qemu,
  openssh,
  iproute2,
  util-linux,
  vfkit,
}:

let
  package = lib.importJSON ../package.json;

  # What the CLI runs besides Node.js: QEMU for the VM and ssh to reach the guest, on Linux ss(8)
  # (who holds a port) and dmesg (the TSC frequency), on Apple Silicon vfkit (with it on PATH the
  # vfkit driver is chosen; Intel Macs run QEMU with HVF). Not Nix: the CLI must run the Nix that
  # owns the host's store, which the modules put on the service's PATH.
  runtimeInputs = [
    qemu
    openssh
  ]
  ++ lib.optionals stdenv.hostPlatform.isLinux [
    iproute2
    util-linux
  ]
  ++ lib.optionals (stdenv.hostPlatform.isDarwin && stdenv.hostPlatform.isAarch64) [ vfkit ];
in
buildNpmPackage {
  pname = package.name;
  inherit (package) version;
  src = import ./source.nix { inherit lib; };

  npmDeps = importNpmLock {
    inherit package;
    packageLock = import ./npm-lock.nix { inherit lib; } ../package-lock.json;
  };
  npmConfigHook = importNpmLock.npmConfigHook;
  # Dependencies' install scripts stay off: none of the runtime ones needs one (ssh2, whose
  # optional native binding would want a compiler, is a test-only dependency).
  npmRebuildFlags = [ "--ignore-scripts" ];
  # npm pack, which lists the files to install, would otherwise run prepack: a second build.
  npmPackFlags = [ "--ignore-scripts" ];

  nativeBuildInputs = [ makeWrapper ];

  postInstall = ''
    wrapProgram $out/bin/linux-builder --prefix PATH : ${lib.makeBinPath runtimeInputs}
  '';

  passthru = { inherit runtimeInputs; };

  meta = {
    inherit (package) description;
    license = lib.licenses.mit;
    mainProgram = "linux-builder";
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
      "aarch64-darwin"
      "x86_64-darwin"
    ];
  };
}
