"""systemd units for running tlskit as a service: `serve --print-systemd-unit`, `acme renew --print-systemd-timer`.

The units are hardened the way distributions ship nginx or Caddy: a dedicated system user, a read-only
system (``ProtectSystem=strict``) with write access only to the state (and log) directories, no new
privileges, and only ``CAP_NET_BIND_SERVICE`` (for ports below 1024) instead of root. systemd's own
``StateDirectory=`` / ``LogsDirectory=`` create the directories, owned by that user, on first start.
"""

from __future__ import annotations

import shlex
from pathlib import Path

SERVICE_USER = "tlskit"
SERVICE_STATE_DIR = Path("/var/lib/tlskit")

_HARDENING = """\
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
UMask=0077"""


def _exec(command: list[str]) -> str:
    # systemd splits ExecStart= like a shell would for quoting, and expands $ and % itself: escape those.
    return " ".join(shlex.quote(part).replace("%", "%%").replace("$", "$$") for part in command)


def _directory_setting(path: Path, base: Path, setting: str) -> str | None:
    """``StateDirectory=tlskit`` for /var/lib/tlskit (systemd creates it for the user), else None."""
    try:
        relative = path.relative_to(base)
    except ValueError:
        return None
    return f"{setting}={relative}" if str(relative) not in ("", ".") else None


def serve_unit(command: list[str], *, state_dir: Path, ports: list[int], writable: list[Path] = (),
               description: str = "tlskit serve: authenticated HTTPS API", notes: list[str] = ()) -> str:
    """A ``tlskit.service`` that runs ``command`` (the full `tlskit serve ...` argv) as user tlskit.

    ``writable`` are other paths the server writes (an access log's directory); ``ports`` decide
    whether it needs CAP_NET_BIND_SERVICE; ``notes`` are comment lines for whoever installs it.
    """
    low_port = any(port < 1024 for port in ports)
    paths = [state_dir, *writable]
    lines = [
        "# tlskit.service: save as /etc/systemd/system/tlskit.service, then",
        f"#   useradd --system --home-dir {SERVICE_STATE_DIR} --shell /usr/sbin/nologin {SERVICE_USER}",
        "#   systemctl daemon-reload && systemctl enable --now tlskit",
        "# Reload the allow-list, limits and log settings: systemctl reload tlskit (SIGHUP).",
        *(f"# {note}" for note in notes),
        "[Unit]",
        f"Description={description}",
        "Documentation=https://pypi.org/project/tlskit/",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={SERVICE_USER}",
        f"Group={SERVICE_USER}",
        f"ExecStart={_exec(command)}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2s",
        # SIGTERM is a graceful stop: in-flight requests get their grace period.
        "TimeoutStopSec=15s",
        "LimitNOFILE=65536",
    ]
    for setting in filter(None, [_directory_setting(state_dir, Path("/var/lib"), "StateDirectory"),
                                 *(_directory_setting(p, Path("/var/log"), "LogsDirectory") for p in writable)]):
        lines.append(setting)
    # "-": a path that does not exist yet is no reason for systemd to refuse the start.
    lines.append("ReadWritePaths=" + " ".join("-" + _exec([str(p)]) for p in paths))
    if low_port:
        lines += ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"]
    else:
        lines += ["CapabilityBoundingSet="]
    lines += [_HARDENING, "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def renew_units(command: list[str], *, out_dir: Path, name: str = "tlskit-renew") -> dict[str, str]:
    """``tlskit-renew.service`` (oneshot: ``command``, the full `tlskit acme renew ...` argv) and the
    ``tlskit-renew.timer`` that starts it twice a day at a random minute, as certbot's timer does.

    Renewal runs as root, since deploy hooks usually reload another service; the file system stays
    read-only but for ``out_dir``. A deploy hook that writes elsewhere needs its path added to
    ReadWritePaths=.
    """
    service = "\n".join([
        f"# {name}.service: save as /etc/systemd/system/{name}.service with {name}.timer beside it, then",
        f"#   systemctl daemon-reload && systemctl enable --now {name}.timer",
        "[Unit]",
        "Description=tlskit acme renew: renew the ACME certificates that are due",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={_exec(command)}",
        f"ReadWritePaths={_exec([str(out_dir)])}",
        _HARDENING.replace("PrivateDevices=yes\n", "").replace("UMask=0077", "UMask=0022"),
        "",
    ])
    timer = "\n".join([
        f"# {name}.timer: starts {name}.service twice a day; `acme renew` does nothing until a certificate is due",
        "[Unit]",
        "Description=Renew tlskit's ACME certificates twice a day",
        "",
        "[Timer]",
        "OnCalendar=*-*-* 00,12:00:00",
        # Spread the load on the CA, as Let's Encrypt asks of every client.
        "RandomizedDelaySec=1h",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {f"{name}.service": service, f"{name}.timer": timer}


def render_files(files: dict[str, str]) -> str:
    """Several unit files in one text, each after a ``### FILE`` line (split them at those lines)."""
    return "\n".join(f"### {file_name}\n{text}" for file_name, text in files.items())
