# services.linux-builder for NixOS: the agent as a systemd service, with the unit settings
# `linux-builder service install` writes (src/agent/service/systemd-unit.ts).
{
  config,
  lib,
  ...
}:

let
  cfg = config.services.linux-builder;

  # One ExecStart word as systemd reads it: % and $ doubled, quoted with C escapes unless plainly safe.
  execWord =
    arg:
    let
      escaped = lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] arg;
      quoted = lib.replaceStrings [ "\\" "\"" "\n" "\t" "\r" ] [ "\\\\" "\\\"" "\\n" "\\t" "\\x0d" ] escaped;
    in
    if arg == ";" then
      "\\;"
    else if builtins.match "[A-Za-z0-9_@+=:,./-]+" arg != null then
      escaped
    else
      "\"${quoted}\"";
in
{
  imports = [ ./common.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services."linux-builder-${cfg.name}" = {
      description = "linux-builder agent for instance ${cfg.name}: boots the Nix builder VM on demand, stops it when idle";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      # The Nix that owns the store: the agent reads its settings and registers host paths in the guest.
      path = [ config.nix.package ];
      serviceConfig = {
        Type = "simple";
        ExecStart = lib.concatMapStringsSep " " execWord cfg.serveCommand;
        # "-": a missing directory is not an error; the agent creates it.
        WorkingDirectory = "-${cfg.stateDir}";
        Restart = "on-failure";
        RestartSec = 2;
        # SIGTERM to the agent alone: it lets connections finish and powers the guest off.
        KillSignal = "SIGTERM";
        KillMode = "mixed";
        TimeoutStopSec = 60;
      };
    };

    # The nix-daemon's ssh runs as root and reads /etc/ssh/ssh_config.
    programs.ssh.extraConfig = cfg.sshConfig;
  };
}
