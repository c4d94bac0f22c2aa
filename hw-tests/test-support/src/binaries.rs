//! Where the workspace's binaries are: next to the running test or benchmark, in its target
//! profile directory (`target/debug/visio-roomd` for tests, `target/release/…` for
//! benchmarks), or in `$VISIO_ROOM_BIN_DIR` when set.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The `visio-roomd` daemon.
pub const ROOMD: &str = "visio-roomd";
/// The `visio-roomctl` command-line client.
pub const ROOMCTL: &str = "visio-roomctl";
/// The local Visio stand-in.
pub const SIM: &str = "visio-sim";

/// The target profile directory of the running executable (`…/target/debug`), or
/// `$VISIO_ROOM_BIN_DIR`.
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("VISIO_ROOM_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(Error::io("find the running test executable"))?;
    let parent = exe.parent().unwrap_or(Path::new("."));
    // Tests and benchmarks live in `<profile>/deps/`; binaries in `<profile>/`.
    let profile = if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().unwrap_or(parent)
    } else {
        parent
    };
    Ok(profile.to_path_buf())
}

/// The path of the workspace binary `name` (e.g. [`ROOMD`]), which must have been built.
pub fn binary(name: &str) -> Result<PathBuf> {
    let dir = bin_dir()?;
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let hint = if release {
        "build the workspace's binaries in release first: `cargo build --release --workspace --bins`"
    } else {
        "build the workspace's binaries first: `cargo build --workspace --bins`"
    };
    Err(Error::MissingBinary {
        path,
        hint: hint.to_owned(),
    })
}

/// The repository root (this crate is `hw-tests/test-support`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    root.canonicalize().unwrap_or(root)
}
