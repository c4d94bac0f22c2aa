#!/usr/bin/env bash
# Dependencies of the meeting session crate (daemon/session, `visio-room-session`).
# - ca-certificates: the system trust store its TLS client (rustls + rustls-native-certs) reads;
# - GStreamer and its plugins come from scripts/deps.d/media.sh (the session drives the media
#   engine); the test peer `visio-sim` is built by cargo from this workspace.
# Usage: scripts/deps.d/session.sh <repo root>. Idempotent, non-interactive, runs as root,
# assumes `apt-get update` was done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ ! -d /etc/ssl/certs ] || ! dpkg -s ca-certificates >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
fi
