#!/usr/bin/env bash
# Dependencies of the systemd integration tests (daemon/roomd/tests/systemd_units/):
#
#   tool                                           package
#   systemd-analyze, systemd-sysusers, -tmpfiles   systemd
#   dbus-daemon (a private system-like bus)        dbus-daemon
#   /usr/share/dbus-1/system.conf (its policy)     dbus-system-bus-common
#   dbus-send, for poking at the bus by hand       dbus-bin
#   the stand-in service and the clients           python3-dbus, python3-gi (for /usr/bin/python3)
#   setpriv (run as another user), unshare         util-linux
#   mount --bind (private user database)           mount
#   xmllint (the D-Bus policy is well-formed)      libxml2-utils
#   strace (the daemon's system calls vs the unit) strace
#   kill (SIGTERM to the daemon, as systemctl stop) procps
#   systemd-nspawn (the unit under a real systemd)   systemd-container
#   dbus.service inside that container             dbus
#   a GStreamer pipeline under the sandbox (ORC)   gstreamer1.0-tools, gstreamer1.0-plugins-base
#
# Nothing else: the tests build their users with systemd-sysusers in a scratch root, never on
# the host. Usage: scripts/deps.d/systemd.sh [<repo root>]. Idempotent, non-interactive, runs
# as root, assumes `apt-get update` was done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(systemd dbus-daemon dbus-system-bus-common dbus-bin python3 python3-dbus python3-gi
          util-linux mount libxml2-utils strace procps
          systemd-container dbus gstreamer1.0-tools gstreamer1.0-plugins-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
/usr/bin/python3 -c 'import dbus, dbus.mainloop.glib, gi' \
  || { echo "systemd.sh: /usr/bin/python3 cannot import dbus and gi" >&2; exit 1; }
