#!/usr/bin/env bash
# Dependencies of visio-sim's tests (hw-tests/visio-sim): the official LiveKit clients that prove
# the simulator's fidelity.
#   - Debian's Chromium (headless, fake camera/microphone) running the meeting page;
#   - the npm `livekit-client` the page loads, installed under hw-tests/.work/web/node_modules;
#   - a Python venv under hw-tests/.work/venv with the PyPI `livekit` SDK (bundles libwebrtc),
#     `websockets` (to drive Chromium over the DevTools protocol) and numpy.
# Usage: scripts/deps.d/sim.sh <repo root>. Idempotent, non-interactive, runs as root, assumes
# `apt-get update` was done.
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
export DEBIAN_FRONTEND=noninteractive
work="$repo/hw-tests/.work"
mkdir -p "$work"

if ! command -v chromium >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
# iproute2: the media tests build a loopback-only network namespace; openssl and curl: the TLS test.
if ! command -v ip >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends iproute2 openssl curl >/dev/null
fi
# The machine image ships Node.js with npm; Debian's npm conflicts with that build, so only fall
# back to Debian's packages when npm is missing altogether.
if ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm modules: package.json lives in hw-tests/web (committed), node_modules in .work (not).
mkdir -p "$work/web"
cp "$repo/hw-tests/web/package.json" "$work/web/package.json"
if [ ! -f "$work/web/node_modules/livekit-client/dist/livekit-client.umd.js" ] \
  || ! cmp -s "$repo/hw-tests/web/package.json" "$work/web/.installed-package.json"; then
  (cd "$work/web" && npm install --no-audit --no-fund --loglevel=error)
  cp "$repo/hw-tests/web/package.json" "$work/web/.installed-package.json"
fi

# Python venv with the official LiveKit SDK.
venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "livekit==1.2.1" "websockets==15.0.1" "numpy<3"
echo "visio-sim test dependencies ready under $work"
