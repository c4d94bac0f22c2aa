//! Device nodes coming and going: an inotify watch on `/dev` and `/dev/input` (created,
//! deleted, permissions changed) bumps a counter that every control waiting for a device
//! awaits. Controls also retry on a timer, so a missed event costs seconds, not the control.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use inotify::{Inotify, WatchMask};
use tokio::sync::watch;

/// Starts the watcher thread; it ends when `stop` is set (checked at each event) or when every
/// receiver is gone.
pub(crate) fn start(stop: Arc<AtomicBool>) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    let spawned = std::thread::Builder::new()
        .name("controls-devwatch".into())
        .spawn(move || {
            if let Err(e) = run(&tx, &stop) {
                tracing::warn!(error = %e, "cannot watch /dev for devices; controls retry on a timer only");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the /dev watcher thread");
    }
    rx
}

fn run(tx: &watch::Sender<u64>, stop: &AtomicBool) -> std::io::Result<()> {
    let mut inotify = Inotify::init()?;
    let mask = WatchMask::CREATE | WatchMask::DELETE | WatchMask::ATTRIB | WatchMask::MOVED_TO;
    inotify.watches().add("/dev", mask)?;
    let mut input_watched = false;
    let mut buf = [0u8; 4096];
    loop {
        if !input_watched && Path::new("/dev/input").is_dir() {
            input_watched = inotify.watches().add("/dev/input", mask).is_ok();
        }
        let n = inotify.read_events_blocking(&mut buf)?.count();
        if stop.load(Ordering::Relaxed) || tx.is_closed() {
            return Ok(());
        }
        if n > 0 {
            tx.send_modify(|g| *g = g.wrapping_add(1));
        }
    }
}
