//! The video bitrate follows the congestion the SFU reports: packet loss injected on the
//! loopback interface of a private network namespace (the room, visio-sim and every packet
//! between them live there) makes the room lower its encoder bitrate; when the loss stops, the
//! bitrate climbs back. The loss is an nftables rule dropping a random share of incoming UDP
//! packets (media, RTCP, ICE; the signalling TCP connection is spared) — `tc netem` would do,
//! but this kernel has no `sch_netem`. Needs root (CI runs tests as root), `ip` and `nft`
//! (iproute2, nftables: `scripts/deps.d/session.sh`).

// The workspace denies unsafe code; this file needs it for
// unshare(2) for a private network namespace; each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use visio_room_core::controller::SessionEvent;
use visio_room_session::{start, SessionHandle};

fn run(cmd: &str) {
    let args: Vec<&str> = cmd.split(' ').collect();
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `{cmd}` ({e}): install iproute2 and nftables (scripts/deps.d/session.sh)")
        });
    assert!(status.success(), "`{cmd}` failed");
}

/// Moves this thread (and the processes and threads it starts) into a new network namespace
/// with only `lo`, so that netem on `lo` touches nothing else on the machine.
fn enter_private_network() {
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "cannot create a network namespace ({}): run the tests as root (CI does)",
        std::io::Error::last_os_error()
    );
    run("ip link set lo up");
}

fn target_bitrate(room: &SessionHandle) -> u32 {
    room.media_status()
        .video
        .map(|v| v.target_bitrate_bps)
        .unwrap_or(0)
}

async fn wait_bitrate(
    room: &SessionHandle,
    secs: u64,
    what: &str,
    ok: impl Fn(u32) -> bool,
) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let bps = target_bitrate(room);
        if ok(bps) {
            return bps;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {secs} s: target bitrate {bps} bit/s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_video_bitrate_drops_under_packet_loss_and_recovers_when_it_stops() {
    init_tracing();
    enter_private_network();
    let sim = Sim::start(&[]);
    let url = sim.meeting_url("abc-defg-hij");
    const MAX: u32 = 1_000_000;
    let mut config = sim_config(&url);
    config.min_video_bitrate_bps = 100_000;
    let mut media = test_media();
    media.video.encoder.bitrate_bps = MAX;
    config.media = Some(media);
    let (tx, mut events) = mpsc::unbounded_channel();
    let room = start(request(1, &url, "Salle A"), config, tx);
    expect_event(&mut events, 20, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    // Let media flow a few seconds on a clean path: the rate stays at its maximum.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(target_bitrate(&room), MAX, "{:#?}", room.media_status());

    run("nft add table inet loss");
    run("nft add chain inet loss input { type filter hook input priority 0 ; }");
    run("nft add rule inet loss input meta l4proto udp numgen random mod 100 < 30 drop");
    let lossy = std::time::Instant::now();
    let low = wait_bitrate(&room, 20, "the bitrate drops under 30 % loss", |b| {
        b <= MAX / 2
    })
    .await;
    let dropped_after = lossy.elapsed();
    run("nft delete table inet loss");
    let clear = std::time::Instant::now();
    let high = wait_bitrate(&room, 30, "the bitrate recovers once the loss stops", |b| {
        b >= low * 2
    })
    .await;
    println!(
        "30 % loss: {MAX} → {low} bit/s in {dropped_after:?}; loss stopped: {low} → {high} bit/s in {:?}",
        clear.elapsed()
    );
    assert!(
        room.media_status()
            .video
            .map(|v| v.packets_sent)
            .unwrap_or(0)
            > 0,
        "video was sent"
    );
}
