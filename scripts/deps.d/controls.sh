#!/usr/bin/env bash
# Dependencies of the controls crate (daemon/controls, `visio-room-controls`): ALSA headers for
# the `alsa` crate (mixer volume), libclang for the `v4l` crate's bindgen build script (camera
# ioctls), libudev headers. Usage: scripts/deps.d/controls.sh <repo root> (unused). Idempotent,
# non-interactive, runs as root; assumes `apt-get update`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends \
    pkg-config \
    libasound2-dev \
    libclang-dev \
    libudev-dev \
    >/dev/null
# The `rpi` feature (rppal) is compile-checked for the Raspberry Pi's architecture.
if command -v rustup >/dev/null; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || echo "controls: could not add the aarch64-unknown-linux-gnu target (rpi feature check will be skipped)"
fi
