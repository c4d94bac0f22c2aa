//! Benchmark: time from starting `visio-roomd --session-bus` to its bus name being owned (the
//! moment it sends `READY=1`), on a private `dbus-daemon`, side by side with a baseline: the time
//! for `dbus-send` to start, connect and acquire a name — the floor for any D-Bus service.
//!
//! Run: `cargo bench -p visio-roomd --bench startup`. Prints a table; target: p50 under 100 ms.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use visio_room_test_support::Bus;

const RUNS: usize = 30;

/// Spawns `command` and returns the time until `name` gets an owner.
async fn time_to_name(bus: &zbus::Connection, name: &str, mut command: Command) -> Duration {
    let dbus = zbus::fdo::DBusProxy::new(bus).await.unwrap();
    let mut owners = dbus
        .receive_name_owner_changed_with_args(&[(0, name)])
        .await
        .unwrap();
    let start = Instant::now();
    let mut child = command.spawn().expect("command starts");
    loop {
        let signal = tokio::time::timeout(Duration::from_secs(10), owners.next())
            .await
            .expect("the name is owned within 10 s")
            .unwrap();
        if !signal.args().unwrap().new_owner().is_none() {
            break;
        }
    }
    let elapsed = start.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    elapsed
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        ms(samples[0]),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(*samples.last().unwrap())
    );
}

#[tokio::main]
async fn main() {
    let bus = Bus::start().expect("a private dbus-daemon");
    let connection = bus.connect().await.expect("connect to the private bus");
    let mut roomd = Vec::new();
    let mut baseline = Vec::new();
    for i in 0..RUNS {
        let mut c = Command::new(env!("CARGO_BIN_EXE_visio-roomd"));
        c.arg("--session-bus")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null());
        roomd.push(time_to_name(&connection, "org.visioroom.Room1", c).await);
        let name = format!("org.visioroom.Baseline{i}");
        let mut b = Command::new("dbus-send");
        b.env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.RequestName",
            ])
            .arg(format!("string:{name}"))
            .arg("uint32:4")
            .stdout(Stdio::null());
        baseline.push(time_to_name(&connection, &name, b).await);
    }
    println!("start -> bus name owned, {RUNS} runs each (ms)");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "", "min", "p50", "p95", "max"
    );
    summary("visio-roomd --session-bus (defaults)", roomd);
    summary("baseline: dbus-send RequestName", baseline);
}
