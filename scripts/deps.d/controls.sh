#!/usr/bin/env bash
# Dependencies of the controls crate (daemon/controls, `visio-room-controls`): ALSA headers for
# the `alsa` crate (mixer volume), libclang for the `v4l` crate's bindgen build script (camera
# ioctls). Usage: scripts/deps.d/controls.sh <repo root> (unused). Idempotent,
# non-interactive, runs as root; assumes `apt-get update`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends \
    pkg-config \
    libasound2-dev \
    libclang-dev \
    libc6-dev-arm64-cross \
    linux-libc-dev-arm64-cross \
    >/dev/null
# The `rpi` feature (rppal) is compile-checked for the Raspberry Pi's architecture:
#   PKG_CONFIG_ALLOW_CROSS=1 BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=--sysroot=/usr/aarch64-linux-gnu \
#     cargo check -p visio-room-controls --features rpi --target aarch64-unknown-linux-gnu
# (the arm64 libc headers above are for v4l's bindgen; nothing is linked, so no cross linker).
if command -v rustup >/dev/null; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || echo "controls: could not add the aarch64-unknown-linux-gnu target (rpi feature check will be skipped)"
fi
