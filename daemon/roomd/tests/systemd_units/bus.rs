//! The harness of the D-Bus tests: a private bus configured like the system bus plus our policy,
//! the users the tests run as, a stand-in service and a one-call client.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::users::UserDb;
use crate::{
    repo_file, require_root, run, tool, ACCESS_DENIED, DEPS_HINT, STEP_TIMEOUT, SYSTEM_PYTHON,
};

/// Who a process runs as.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
}

impl Identity {
    pub(crate) fn root() -> Identity {
        Identity {
            name: "root".into(),
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }

    /// `program` run as this identity (through setpriv unless root), with a clean environment.
    pub(crate) fn command(&self, program: &str, home: &Path) -> Command {
        let mut cmd = if self.uid == 0 {
            Command::new(program)
        } else {
            let mut cmd = Command::new(tool("setpriv", "util-linux"));
            cmd.arg(format!("--reuid={}", self.uid))
                .arg(format!("--regid={}", self.gid));
            if self.groups.is_empty() {
                cmd.arg("--clear-groups");
            } else {
                let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
                cmd.arg(format!("--groups={}", list.join(",")));
            }
            cmd.arg("--").arg(program);
            cmd
        };
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", home)
            .env("LANG", "C.UTF-8");
        cmd
    }
}

/// A process the test started, killed when the test ends (also on failure).
pub(crate) struct Background {
    pub(crate) what: String,
    pub(crate) child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
    pub(crate) stderr_file: PathBuf,
}

impl Background {
    pub(crate) fn spawn(mut cmd: Command, what: &str, stderr_file: PathBuf) -> Background {
        let err = fs::File::create(&stderr_file).expect("create stderr log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            what: what.to_owned(),
            child,
            lines,
            stderr_file,
        }
    }

    /// The next line the process prints, or a failure showing what it wrote on stderr.
    pub(crate) fn next_line(&self) -> String {
        self.lines.recv_timeout(STEP_TIMEOUT).unwrap_or_else(|e| {
            let why = match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("printed nothing within {STEP_TIMEOUT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => "exited (or closed its output)".to_owned(),
            };
            let stderr = fs::read_to_string(&self.stderr_file).unwrap_or_default();
            panic!("{} {why}; its stderr:\n{stderr}", self.what)
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private bus configured like the distribution's system bus, plus our policy file.
pub(crate) struct SystemLikeBus {
    pub(crate) address: String,
    pub(crate) _daemon: Background,
}

impl SystemLikeBus {
    /// Starts dbus-daemon as root in a private mount namespace where /etc/passwd and /etc/group
    /// are the ones of `db`, so the policy's user and group names resolve to the test's users.
    pub(crate) fn start(dir: &Path, db: &UserDb) -> SystemLikeBus {
        require_root("dbus-daemon gets a private user database through bind mounts");
        let dbus_daemon = tool("dbus-daemon", "dbus-daemon");
        let unshare = tool("unshare", "util-linux");
        let config = dir.join("system-like.conf");
        fs::write(&config, system_like_config(dir)).expect("write bus config");
        let script = format!(
            "set -e; mount --bind '{root}/etc/passwd' /etc/passwd; \
             mount --bind '{root}/etc/group' /etc/group; \
             exec '{daemon}' --nofork --nopidfile --print-address=1 --config-file='{config}'",
            root = db.root.display(),
            daemon = dbus_daemon.display(),
            config = config.display(),
        );
        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(script);
        let daemon = Background::spawn(cmd, "dbus-daemon", dir.join("dbus-daemon.stderr"));
        let address = daemon.next_line();
        assert!(
            address.starts_with("unix:path="),
            "dbus-daemon printed `{address}` instead of its address"
        );
        SystemLikeBus {
            address,
            _daemon: daemon,
        }
    }
}

/// The distribution's system bus (`/usr/share/dbus-1/system.conf`) reduced to its policies —
/// its default-deny rules are what our file punches holes in — listening on a private socket,
/// with our policy file included as the system bus includes `system.d/*.conf`.
pub(crate) fn system_like_config(dir: &Path) -> String {
    let system_conf = "/usr/share/dbus-1/system.conf";
    let text = fs::read_to_string(system_conf).unwrap_or_else(|e| {
        panic!(
            "cannot read {system_conf} ({e}; Debian package dbus-system-bus-common): {DEPS_HINT}"
        )
    });
    let mut policies = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<policy") {
        let end = rest[start..]
            .find("</policy>")
            .map(|e| start + e + "</policy>".len())
            .unwrap_or_else(|| panic!("unterminated <policy> in {system_conf}"));
        policies.push_str(&rest[start..end]);
        policies.push('\n');
        rest = &rest[end..];
    }
    assert!(
        policies.contains("<deny send_type=\"method_call\"/>"),
        "{system_conf} no longer denies method calls by default; the test's premise changed"
    );
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
{policies}
  <include>{ours}</include>
</busconfig>
"#,
        socket = dir.join("system_bus_socket").display(),
        ours = repo_file("systemd/org.visioroom.Room1.conf").display(),
    )
}

/// A stand-in for visio-roomd: owns the name, serves `State` and `MicMuted`, `SetMicMuted(b)`
/// (which emits PropertiesChanged), and answers `Set` with PropertyReadOnly — so a caller that
/// gets PropertyReadOnly was let through by the bus, one that gets AccessDenied was not.
pub(crate) const STAND_IN_SERVICE: &str = r#"
import sys
import dbus
import dbus.service
import dbus.mainloop.glib
from gi.repository import GLib

NAME, PATH, IFACE = "org.visioroom.Room1", "/org/visioroom/Room1", "org.visioroom.Room1"

class Room(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, PATH)
        self.mic_muted = False

    @dbus.service.method(IFACE, in_signature="b", out_signature="")
    def SetMicMuted(self, muted):
        self.mic_muted = bool(muted)
        self.PropertiesChanged(IFACE, {"MicMuted": dbus.Boolean(self.mic_muted)}, [])

    def props(self):
        return {"State": dbus.String("idle"), "MicMuted": dbus.Boolean(self.mic_muted)}

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, iface, prop):
        return self.props()[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        return self.props()

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ssv", out_signature="")
    def Set(self, iface, prop, value):
        raise dbus.exceptions.DBusException(
            prop + " is read-only", name="org.freedesktop.DBus.Error.PropertyReadOnly")

    @dbus.service.signal(dbus.PROPERTIES_IFACE, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
try:
    name = dbus.service.BusName(NAME, bus, do_not_queue=True)
except dbus.exceptions.DBusException as e:
    print("ERROR", e.get_dbus_name(), e.get_dbus_message(), flush=True)
    sys.exit(1)
room = Room(bus)
print("READY", flush=True)
GLib.MainLoop().run()
"#;

/// One client action per run; prints one line: `OK detail` or `ERROR error.name message`.
pub(crate) const CLIENT: &str = r#"
import sys
import dbus
import dbus.mainloop.glib
from gi.repository import GLib

NAME, PATH, IFACE = "org.visioroom.Room1", "/org/visioroom/Room1", "org.visioroom.Room1"

def value(arg):
    kind, _, text = arg.partition(":")
    return {"b": lambda t: dbus.Boolean(t == "true"), "u": lambda t: dbus.UInt32(int(t)),
            "s": dbus.String}[kind](text)

def watch(bus):
    loop = GLib.MainLoop()
    def changed(iface, props, invalidated):
        print("OK", ",".join("%s=%s" % (k, bool(v)) for k, v in sorted(props.items())), flush=True)
        loop.quit()
    bus.add_signal_receiver(changed, signal_name="PropertiesChanged",
                            dbus_interface=dbus.PROPERTIES_IFACE, bus_name=NAME, path=PATH)
    bus.get_name_owner(NAME)  # a round trip: the match rule is in place once this returns
    print("SUBSCRIBED", flush=True)
    def timeout():
        print("ERROR timeout no PropertiesChanged within 8 s", flush=True)
        loop.quit()
    GLib.timeout_add_seconds(8, timeout)
    loop.run()

def main():
    address, action, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if action == "watch":
        dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
        return watch(dbus.bus.BusConnection(address))
    bus = dbus.bus.BusConnection(address)
    try:
        if action == "own":
            print("OK request_name=%d" % bus.request_name(NAME, dbus.bus.NAME_FLAG_DO_NOT_QUEUE))
            return
        room = bus.get_object(NAME, PATH, introspect=False)
        props = dbus.Interface(room, dbus.PROPERTIES_IFACE)
        if action == "get-all":
            detail = ",".join(sorted(str(k) for k in props.GetAll(IFACE)))
        elif action == "get":
            detail = "%s=%s" % (args[0], props.Get(IFACE, args[0]))
        elif action == "set":
            props.Set(IFACE, args[0], value(args[1]))
            detail = "set"
        elif action == "introspect":
            xml = room.Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")
            detail = "introspected"
        elif action == "call":
            room.get_dbus_method(args[0], IFACE)(*[value(a) for a in args[1:]])
            detail = "called"
        elif action == "call-without-interface":
            room.get_dbus_method(args[0])(*[value(a) for a in args[1:]])
            detail = "called"
        else:
            raise SystemExit("unknown action " + action)
    except dbus.exceptions.DBusException as e:
        print("ERROR", e.get_dbus_name(), e.get_dbus_message(), flush=True)
        return
    print("OK", detail, flush=True)

main()
"#;

/// A scratch directory readable by the unprivileged users the test runs as.
pub(crate) fn shared_scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod scratch");
    for (name, text) in [("service.py", STAND_IN_SERVICE), ("client.py", CLIENT)] {
        let path = dir.path().join(name);
        fs::write(&path, text).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod script");
    }
    dir
}

/// One client action by `who`; returns its result line (`OK ...` or `ERROR name message`).
pub(crate) fn client(dir: &Path, bus: &SystemLikeBus, who: &Identity, args: &[&str]) -> String {
    let mut cmd = who.command(SYSTEM_PYTHON, dir);
    cmd.arg(dir.join("client.py")).arg(&bus.address).args(args);
    let what = format!("client `{}` as {}", args.join(" "), who.name);
    let done = run(cmd, &what);
    let line = done.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(
        done.status.success() && (line.starts_with("OK") || line.starts_with("ERROR")),
        "{what} failed ({}):\n{}{}",
        done.status,
        done.stdout,
        done.stderr
    );
    line
}

pub(crate) fn assert_allowed(line: &str, what: &str) {
    assert!(
        line.starts_with("OK"),
        "{what} should be allowed, got: {line}"
    );
}

pub(crate) fn assert_denied(line: &str, what: &str) {
    assert!(
        line.starts_with(&format!("ERROR {ACCESS_DENIED}")),
        "{what} should be refused by the bus with AccessDenied, got: {line}"
    );
}

/// The users of the D-Bus tests: the daemon's, an operator in visio-room-admin (added the way
/// docs/operations.md tells an image to), and nobody.
pub(crate) fn policy_users(dir: &Path) -> (UserDb, Identity, Identity, Identity) {
    let db = UserDb::build(
        &dir.join("root"),
        true,
        &["u room-operator - \"test operator\"\nm room-operator visio-room-admin\n"],
    );
    let daemon = db.identity("visio-room");
    let operator = db.identity("room-operator");
    let nobody = db.identity("nobody");
    assert!(
        operator.groups.contains(&db.gid("visio-room-admin")),
        "the operator is in visio-room-admin"
    );
    (db, daemon, operator, nobody)
}
