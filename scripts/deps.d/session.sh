#!/usr/bin/env bash
# Dependencies of the meeting session crate (daemon/session, `visio-room-session`).
# - ca-certificates: the system trust store its TLS client (rustls + rustls-native-certs) reads;
# - iproute2 and nftables: the packet-loss test (tests/congestion.rs) drops a share of UDP
#   packets with an nftables rule inside a private network namespace (the kernel here has no
#   sch_netem, so `tc netem` is not an option); the blocked-network test (tests/blocked_udp.rs)
#   drops all UDP, then direct TCP too, between two namespaces;
# - coturn (a real TURN server, over UDP, TCP and TLS) and openssl (its test certificate) for
#   tests/blocked_udp.rs; the Debian package's own service is not used (the test starts
#   `turnserver` itself, in its namespace);
# - GStreamer and its plugins come from scripts/deps.d/media.sh (the session drives the media
#   engine); the test peer `visio-sim` is built by cargo from this workspace.
# Usage: scripts/deps.d/session.sh <repo root>. Idempotent, non-interactive, runs as root,
# assumes `apt-get update` was done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ ! -d /etc/ssl/certs ] || ! dpkg -s ca-certificates >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
fi
for pkg in iproute2 nftables coturn openssl; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
  fi
done
