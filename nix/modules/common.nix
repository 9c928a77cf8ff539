# What the NixOS and nix-darwin modules share: the options, the agent's command line, and the
# builder's registration with Nix. The service itself (systemd or launchd) is each platform's.
#
# Nothing secret is in the store: the agent (`linux-builder serve`) makes the keys at its start,
# as root, in the instance's state dir (0700), and writes there the files Nix and ssh read at
# every build: the machines file with the pinned host key, and the ssh block (host alias, port,
# HostKeyAlias, key, known_hosts) that the system's ssh config Includes. The same code writes
# them for `linux-builder nix-config --install`.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;
  cfg = config.services.linux-builder;

  # The guest runs the host's architecture (the CLI's default), and its own system comes first.
  guestSystem = if pkgs.stdenv.hostPlatform.isAarch64 then "aarch64-linux" else "x86_64-linux";
  defaultSystems =
    if guestSystem == "aarch64-linux" then
      [
        "aarch64-linux"
        "x86_64-linux"
        "i686-linux"
      ]
    else
      [
        "x86_64-linux"
        "i686-linux"
        "aarch64-linux"
      ];
  systems =
    if lib.elem guestSystem cfg.systems then
      [ guestSystem ] ++ lib.remove guestSystem cfg.systems
    else
      cfg.systems;

  alias = "linux-builder-${cfg.name}";
  # Run as root without XDG variables, the CLI keeps an instance here (src/fs/roots.ts); on macOS
  # not in /var/lib/linux-builder, which nix-darwin deletes while its own builder is off.
  stateDir = "${if pkgs.stdenv.hostPlatform.isDarwin then "/var/db" else "/var/lib"}/linux-builder/${cfg.name}";

  # Checked by the CLI when the service starts (a bad one fails it with one line saying why).
  size = types.either types.ints.positive types.str;
in
{
  options.services.linux-builder = {
    enable = lib.mkEnableOption "a Linux builder VM for Nix: the on-demand agent runs as a system service, and Nix builds Linux derivations through it";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage <linux-builder>/nix/package.nix { }";
      description = "The linux-builder package the service runs.";
    };

    name = mkOption {
      type = types.strMatching "[A-Za-z0-9][A-Za-z0-9_-]{0,39}";
      default = "default";
      description = ''
        The instance: its files are in /var/lib/linux-builder/<name> (macOS: /var/db/linux-builder/<name>), its service is
        linux-builder-<name>, and Nix reaches it as the ssh host alias linux-builder-<name>.
        `sudo linux-builder --name <name> status` (or `logs`, `ssh`, `doctor`) looks at it.
      '';
    };

    cores = mkOption {
      type = types.either (types.enum [ "auto" ]) types.ints.positive;
      default = "auto";
      description = ''
        Virtual CPUs of the VM; "auto" takes all host cores up to 8. At most the host's cores.
      '';
    };

    memory = mkOption {
      type = size;
      default = "auto";
      example = "4G";
      description = ''
        The VM's memory: MiB when a number, or a size such as "4G"; "auto" is a quarter of the
        host's memory up to 2 GiB. Builds of big packages want 4G or more.
      '';
    };

    diskSize = mkOption {
      type = size;
      default = "40G";
      example = "100G";
      description = ''
        The instance disk: a sparse file that takes host space only as the guest writes. A bigger
        value grows it at the next boot; a smaller one is refused (the service fails, saying so)
        unless `ephemeral` is on, as the guest's file system cannot shrink.
      '';
    };

    ephemeral = mkOption {
      type = types.bool;
      default = false;
      description = "Wipe the disk at every boot of the VM, so nothing built survives a restart.";
    };

    systems = mkOption {
      type = types.nonEmptyListOf (types.strMatching "[a-z0-9_]+-linux");
      default = defaultSystems;
      defaultText = lib.literalMD ''
        the host's own Linux system first, then the other two of x86_64-linux, i686-linux and
        aarch64-linux (those the guest's kernel cannot run natively run under qemu-user in the guest)
      '';
      description = "The Nix systems the builder builds.";
    };

    idleTimeout = mkOption {
      type = types.str;
      default = "3h";
      example = "20m";
      description = ''
        The agent powers the VM off once no connection has been open for this long; the next
        build boots it again (and waits for it, it does not fail).
      '';
    };

    port = mkOption {
      type = types.nullOr types.port;
      default = null;
      example = 31122;
      description = ''
        The agent's port on 127.0.0.1. null: a free one, chosen at the first start and kept. Nix's
        ssh finds it either way, through the ssh block the agent writes.
      '';
    };

    maxJobs = mkOption {
      type = types.ints.positive;
      default = if lib.isInt cfg.cores then cfg.cores else 8;
      defaultText = lib.literalMD "`cores`, or 8 when it is \"auto\"";
      description = "How many builds Nix sends to the builder at once (its machines entry's maxJobs).";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--accel"
        "tcg"
      ];
      description = "More options for `linux-builder serve` (see `linux-builder serve --help`).";
    };

    serveCommand = mkOption {
      type = types.listOf types.str;
      internal = true;
      readOnly = true;
      description = "The service's command line.";
    };

    stateDir = mkOption {
      type = types.str;
      internal = true;
      readOnly = true;
      default = stateDir;
      description = "Where the CLI, run as root without XDG variables, keeps the instance's files.";
    };

    sshConfig = mkOption {
      type = types.lines;
      internal = true;
      readOnly = true;
      description = "What the system's ssh config gets: the alias, and the Include of the agent's ssh block.";
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        # Every setting is given at every start: removing one here puts the CLI's default back.
        services.linux-builder.serveCommand = [
          "${cfg.package}/bin/linux-builder"
          "--name"
          cfg.name
          "serve"
          "--cores"
          (toString cfg.cores)
          "--memory"
          (toString cfg.memory)
          "--disk-size"
          (toString cfg.diskSize)
          (if cfg.ephemeral then "--ephemeral" else "--no-ephemeral")
          "--systems"
          (lib.concatStringsSep "," systems)
          "--idle-timeout"
          cfg.idleTimeout
        ]
        ++ lib.optionals (cfg.port != null) [
          "--listen"
          "127.0.0.1:${toString cfg.port}"
        ]
        ++ cfg.extraArgs;

        # Host opens a block for the alias alone, so the Include stays conditional on it wherever
        # this text lands among other Host blocks; the included file names the alias itself.
        services.linux-builder.sshConfig = ''
          Host ${alias}
            Include ${stateDir}/nix-ssh_config
        '';

        environment.systemPackages = [ cfg.package ];

        warnings = lib.optional (!config.nix.enable) ''
          services.linux-builder: nix.enable is false, so the builder is not registered with Nix.
          Once the service runs: sudo linux-builder --name ${cfg.name} nix-config --install
        '';
      }

      (lib.mkIf config.nix.enable {
        nix.distributedBuilds = true;
        # The host key is pinned by the ssh block (HostKeyAlias, known_hosts in the state dir,
        # StrictHostKeyChecking yes): the key is made at the agent's first start, after this is built.
        nix.buildMachines = [
          {
            hostName = alias;
            protocol = "ssh-ng";
            sshUser = "root";
            sshKey = "${stateDir}/id_ed25519";
            inherit systems;
            inherit (cfg) maxJobs;
            speedFactor = 1;
            supportedFeatures = [
              "benchmark"
              "big-parallel"
            ];
          }
        ];
        nix.settings.builders-use-substitutes = true;
      })
    ]
  );
}
