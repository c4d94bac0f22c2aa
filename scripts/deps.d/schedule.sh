#!/usr/bin/env bash
# Dependencies of the room-calendar crate (daemon/schedule, `visio-room-schedule`) tests:
#   - a Python venv with the reference implementation `recurring-ical-events` (PyPI), used by
#     the differential test and the benchmark:  $REPO/hw-tests/.work/venv-calendar
#   - the .ics corpora shipped in the `recurring-ical-events` and `icalendar` source
#     distributions, downloaded from PyPI and unpacked (never committed):
#                                                $REPO/hw-tests/.work/calendar-corpus/
# Idempotent, non-interactive, runs as root; assumes `apt-get update` was done.
# Usage: scripts/deps.d/schedule.sh REPO
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
work="$repo/hw-tests/.work"
venv="$work/venv-calendar"
corpus="$work/calendar-corpus"
# Versions are pinned so the agreement rate of the differential test is reproducible.
rie_version="3.8.0"
icalendar_version="6.3.1"

export DEBIAN_FRONTEND=noninteractive
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

mkdir -p "$work"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import recurring_ical_events, icalendar, sys; \
  sys.exit(0 if recurring_ical_events.__version__ == '$rie_version' and icalendar.__version__ == '$icalendar_version' else 1)" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "recurring-ical-events==$rie_version" "icalendar==$icalendar_version"
fi

mkdir -p "$corpus/sdist"
for spec in "recurring-ical-events==$rie_version" "icalendar==$icalendar_version"; do
  name="${spec%%==*}"
  if ! ls "$corpus/sdist" | grep -qi "^${name//-/[-_]}-${spec##*==}\.tar\.gz$"; then
    "$venv/bin/pip" download -q --disable-pip-version-check --no-binary :all: --no-deps \
      -d "$corpus/sdist" "$spec"
  fi
done
for archive in "$corpus"/sdist/*.tar.gz; do
  dest="$corpus/$(basename "$archive" .tar.gz)"
  if [ ! -d "$dest" ]; then
    mkdir -p "$dest.tmp"
    tar -xzf "$archive" -C "$dest.tmp" --strip-components=1
    mv "$dest.tmp" "$dest"
  fi
done
echo "schedule: venv $venv, corpus $corpus ($(find "$corpus" -name '*.ics' | wc -l) .ics files)"
