#!/usr/bin/env bash
# cargo-fuzz, for the brief fuzzing run of the test command (scripts/fuzz). Installed from
# crates.io into $REPO/hw-tests/.work/cargo-tools (never committed). libFuzzer is built from the
# C++ sources inside the libfuzzer-sys crate, hence g++.
# Idempotent, non-interactive, runs as root; assumes `apt-get update` was done.
# Usage: scripts/deps.d/fuzz.sh REPO
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
tools="$repo/hw-tests/.work/cargo-tools"
version="0.13.2"
export DEBIAN_FRONTEND=noninteractive
if ! command -v g++ >/dev/null; then
  apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$version"; then
  cargo install --quiet --locked --root "$tools" cargo-fuzz --version "$version"
fi
echo "fuzz: $("$tools/bin/cargo-fuzz" --version)"
