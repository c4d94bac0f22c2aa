//! Users, groups and directories: `systemd-sysusers` and `systemd-tmpfiles` on our snippets, in a
//! scratch root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bus::Identity;
use crate::{repo_file, run, tool, unit_file};

/// A passwd/group database built by `systemd-sysusers --root` in a scratch directory.
pub(crate) struct UserDb {
    pub(crate) root: PathBuf,
    pub(crate) users: BTreeMap<String, (u32, u32, String, String)>,
    pub(crate) groups: BTreeMap<String, (u32, Vec<String>)>,
}

impl UserDb {
    /// Applies `visio-room.sysusers` plus `extra` snippets to `root`, optionally on top of a
    /// copy of the host's database (so that root and nobody exist as on a real system).
    pub(crate) fn build(root: &Path, seed_from_host: bool, extra: &[&str]) -> UserDb {
        let sysusers = tool("systemd-sysusers", "systemd");
        fs::create_dir_all(root.join("etc")).expect("create etc");
        if seed_from_host {
            for file in ["passwd", "group"] {
                fs::copy(Path::new("/etc").join(file), root.join("etc").join(file))
                    .unwrap_or_else(|e| panic!("copy /etc/{file}: {e}"));
            }
        }
        let mut files = vec![repo_file("systemd/visio-room.sysusers")];
        for (i, snippet) in extra.iter().enumerate() {
            let path = root.join(format!("extra-{i}.sysusers"));
            fs::write(&path, snippet).expect("write sysusers snippet");
            files.push(path);
        }
        let mut cmd = Command::new(sysusers);
        cmd.arg(format!("--root={}", root.display())).args(&files);
        let applied = run(cmd, "systemd-sysusers");
        assert!(
            applied.status.success() && !applied.stderr.contains("ignoring"),
            "systemd-sysusers rejected visio-room.sysusers ({}):\n{}",
            applied.status,
            applied.stderr
        );
        UserDb::read(root)
    }

    pub(crate) fn read(root: &Path) -> UserDb {
        let passwd = fs::read_to_string(root.join("etc/passwd")).expect("read passwd");
        let group = fs::read_to_string(root.join("etc/group")).expect("read group");
        let users = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 7).then(|| {
                    let id = |s: &str| s.parse().expect("numeric id");
                    (
                        f[0].to_owned(),
                        (id(f[2]), id(f[3]), f[5].to_owned(), f[6].to_owned()),
                    )
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 4).then(|| {
                    let members = f[3]
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect();
                    (
                        f[0].to_owned(),
                        (f[2].parse().expect("numeric gid"), members),
                    )
                })
            })
            .collect();
        UserDb {
            root: root.to_owned(),
            users,
            groups,
        }
    }

    pub(crate) fn user(&self, name: &str) -> &(u32, u32, String, String) {
        self.users
            .get(name)
            .unwrap_or_else(|| panic!("no user {name} in {}/etc/passwd", self.root.display()))
    }

    pub(crate) fn gid(&self, name: &str) -> u32 {
        self.groups
            .get(name)
            .unwrap_or_else(|| panic!("no group {name} in {}/etc/group", self.root.display()))
            .0
    }

    /// How a process of `user` runs: its IDs and supplementary groups, as a login would get them.
    pub(crate) fn identity(&self, user: &str) -> Identity {
        let &(uid, gid, _, _) = self.user(user);
        let groups = self
            .groups
            .values()
            .filter(|(_, members)| members.iter().any(|m| m == user))
            .map(|(gid, _)| *gid)
            .collect();
        Identity {
            name: user.to_owned(),
            uid,
            gid,
            groups,
        }
    }
}

#[test]
fn sysusers_creates_the_daemon_user_with_its_device_groups_and_the_admin_group() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = UserDb::build(dir.path(), false, &[]);
    let (uid, gid, home, shell) = db.user("visio-room").clone();
    assert!(
        uid < 1000,
        "visio-room must be a system user, got uid {uid}"
    );
    assert_eq!(gid, db.gid("visio-room"), "primary group is visio-room");
    assert_eq!(home, "/var/lib/visio-room");
    assert!(shell.ends_with("nologin"), "no login shell, got {shell}");
    for group in ["video", "audio", "input", "render", "gpio"] {
        assert!(
            db.groups[group].1.iter().any(|m| m == "visio-room"),
            "visio-room must be in group {group} (device access)"
        );
    }
    assert!(
        db.groups["visio-room-admin"].1.is_empty(),
        "visio-room-admin starts empty: operators are added on the device"
    );
    // The unit's SupplementaryGroups= must all exist, or systemd refuses to start the service.
    let unit = fs::read_to_string(unit_file()).expect("read the unit");
    let supplementary = unit
        .lines()
        .find_map(|l| l.strip_prefix("SupplementaryGroups="))
        .expect("SupplementaryGroups= in the unit");
    for group in supplementary.split_whitespace() {
        db.gid(group);
    }
}

#[test]
fn tmpfiles_creates_private_state_and_config_directories() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = UserDb::build(dir.path(), false, &[]);
    fs::create_dir_all(dir.path().join("var/lib")).expect("create var/lib");
    let tmpfiles = tool("systemd-tmpfiles", "systemd");
    let mut cmd = Command::new(&tmpfiles);
    cmd.arg("--create")
        .arg(format!("--root={}", dir.path().display()))
        .arg(repo_file("systemd/visio-room.tmpfiles"));
    let created = run(cmd, "systemd-tmpfiles");
    assert!(
        created.status.success() && created.stderr.trim().is_empty(),
        "systemd-tmpfiles rejected visio-room.tmpfiles ({}):\n{}",
        created.status,
        created.stderr
    );
    let (daemon_uid, daemon_gid, _, _) = *db.user("visio-room");
    let check = |path: &str, uid: u32, gid: u32, mode: u32| {
        let meta = fs::metadata(dir.path().join(path))
            .unwrap_or_else(|e| panic!("{path} was not created: {e}"));
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (uid, gid, mode),
            "owner, group and mode of {path}"
        );
    };
    check("etc/visio-room", 0, daemon_gid, 0o750);
    check("etc/visio-room/secrets", 0, daemon_gid, 0o750);
    check("var/lib/visio-room", daemon_uid, daemon_gid, 0o750);
    // An existing, world-readable config.toml (it may hold calendar credentials) is fixed up.
    let config = dir.path().join("etc/visio-room/config.toml");
    fs::write(&config, "").expect("write config.toml");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut again = Command::new(&tmpfiles);
    again
        .arg("--create")
        .arg(format!("--root={}", dir.path().display()))
        .arg(repo_file("systemd/visio-room.tmpfiles"));
    assert!(run(again, "systemd-tmpfiles").status.success());
    check("etc/visio-room/config.toml", 0, daemon_gid, 0o640);
}
