# services.linux-builder for nix-darwin: the agent as a launchd daemon, with the keys
# `linux-builder service install` writes into its plist (src/agent/service/launchd-plist.ts).
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.linux-builder;
  inherit (cfg) stateDir;
in
{
  imports = [ ./common.nix ];

  config = lib.mkIf cfg.enable {
    launchd.daemons."linux-builder-${cfg.name}" = {
      # nix-darwin runs it as /bin/sh -c "/bin/wait4path /nix/store && exec …": at boot the
      # store's volume may not be mounted yet.
      command = lib.escapeShellArgs cfg.serveCommand;
      # The Nix that owns the store (the agent reads its settings and registers host paths in
      # the guest), then the system's tools.
      path = [
        (if config.nix.enable then "${config.nix.package}/bin" else "/nix/var/nix/profiles/default/bin")
        "/usr/bin"
        "/bin"
        "/usr/sbin"
        "/sbin"
      ];
      serviceConfig = {
        Label = "org.linux-builder.${cfg.name}";
        RunAtLoad = true;
        # Restarted after a failure only: a clean exit (SIGTERM, bootout) stays stopped.
        KeepAlive.SuccessfulExit = false;
        # The agent lets connections finish and powers the guest off before it exits.
        ExitTimeOut = 60;
        StandardOutPath = "${stateDir}/service.log";
        StandardErrorPath = "${stateDir}/service.log";
      };
    };

    # launchd opens the log itself and does not create its directory.
    system.activationScripts.preActivation.text = ''
      install -d -m 0700 /var/db/linux-builder ${stateDir}
    '';

    # macOS's /etc/ssh/ssh_config includes ssh_config.d/* first; the nix-daemon's ssh runs as root.
    environment.etc."ssh/ssh_config.d/100-linux-builder-${cfg.name}.conf".text = cfg.sshConfig;
  };
}
