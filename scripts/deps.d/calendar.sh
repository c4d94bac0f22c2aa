#!/usr/bin/env bash
# Dependencies of the calendar-sources crate (daemon/calendar, `visio-room-calendar`) tests:
#   - a Python venv with the Radicale CalDAV server (PyPI), started by the tests on a loopback
#     port with htpasswd auth and a temporary storage directory:
#                                                $REPO/hw-tests/.work/venv-radicale
#   - a venv with the Xandikos CalDAV server (PyPI; no auth, git-backed, 412 on a bad sync
#     token):                                    $REPO/hw-tests/.work/venv-xandikos
#   - openssl (CLI), to make a private certificate authority for the HTTPS test
# Idempotent, non-interactive, runs as root; assumes `apt-get update` was done.
# Usage: scripts/deps.d/calendar.sh REPO
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
work="$repo/hw-tests/.work"
venv="$work/venv-radicale"
# Pinned so the server behaviour the tests rely on (403 on an invalid sync token, collection GET
# as one .ics with an ETag) is reproducible.
radicale_version="3.9.0"
xandikos_version="0.4.10"
xvenv="$work/venv-xandikos"

export DEBIAN_FRONTEND=noninteractive
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

if ! command -v openssl >/dev/null; then
  apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi

mkdir -p "$work"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import radicale, sys; \
  sys.exit(0 if radicale.VERSION == '$radicale_version' else 1)" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "radicale==$radicale_version"
fi
if [ ! -x "$xvenv/bin/python" ]; then
  python3 -m venv "$xvenv"
fi
if ! "$xvenv/bin/python" -c "import importlib.metadata as m, sys; \
  sys.exit(0 if m.version('xandikos') == '$xandikos_version' else 1)" 2>/dev/null; then
  "$xvenv/bin/pip" install -q --disable-pip-version-check "xandikos==$xandikos_version"
fi
echo "calendar: Xandikos $xandikos_version in $xvenv"
echo "calendar: Radicale $("$venv/bin/python" -c 'import radicale; print(radicale.VERSION)') in $venv"
