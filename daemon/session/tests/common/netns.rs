//! Two network namespaces joined by a veth pair, for tests that cut or change the room's network:
//! the test thread moves into a new namespace (the room's, `vroom`) and the service runs in a
//! named one (`vsvc`), removed with what runs in it when dropped.
// unshare(2) has no safe wrapper in the standard library.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The workspace's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a command to completion; panics with its error output when it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {args:?} ({e}): install iproute2, nftables, coturn and openssl (scripts/deps.d/session.sh)")
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The service's network namespace, removed when dropped (with what runs in it).
pub struct ServiceNamespace {
    pub name: String,
    pub children: Vec<Child>,
}

impl Drop for ServiceNamespace {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

impl ServiceNamespace {
    /// Moves this thread into a new namespace (the room's, address `room`/24 on `vroom`) and
    /// makes the service's (`<prefix>-<pid>`, address `service`/24 on `vsvc`), joined by a veth
    /// pair.
    pub fn create(prefix: &str, service: &str, room: &str) -> ServiceNamespace {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace;
        // it runs before any other thread of the test starts.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "cannot create a network namespace ({}): run the tests as root (CI does)",
            std::io::Error::last_os_error()
        );
        let name = format!("{prefix}-{}", std::process::id());
        let ns = ServiceNamespace {
            name: name.clone(),
            children: Vec::new(),
        };
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "link", "set", "lo", "up"]);
        run(&[
            "ip", "link", "add", "vroom", "type", "veth", "peer", "name", "vsvc", "netns", &name,
        ]);
        run(&["ip", "addr", "add", &format!("{room}/24"), "dev", "vroom"]);
        run(&["ip", "link", "set", "vroom", "up"]);
        for cmd in [
            vec!["ip", "link", "set", "lo", "up"],
            vec!["ip", "addr", "add", &format!("{service}/24"), "dev", "vsvc"],
            vec!["ip", "link", "set", "vsvc", "up"],
        ] {
            let mut args = vec!["ip", "netns", "exec", &name];
            args.extend(cmd);
            run(&args);
        }
        ns
    }

    /// A command that runs in the service's namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}
