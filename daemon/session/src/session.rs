//! The session task: Meet API → media → LiveKit connection loop (with rejoin) → leave.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use visio_room_core::backoff::{seed_from, Backoff, BackoffPolicy};
use visio_room_core::controller::{EndReason, Failure, FailureKind, SessionEvent};

use crate::config::SessionConfig;
use crate::meet::{MeetClient, MeetingTarget};
use crate::participant::{Effect, Input, LocalParticipant, Sending};
use crate::rtc::Apis;
use crate::signal::{self, Mode, Opened};
use crate::stats::Shared;
use crate::{Command, SessionEvents, SessionRequest};

mod connection;
mod local_media;

use connection::{Connection, Link};
use local_media::{set_pipelines, start_media, Media};

const CAMERA_CID: &str = "visio-room-camera";
const MICROPHONE_CID: &str = "visio-room-microphone";
const STREAM_ID: &str = "visio-room";
/// How long to wait for the SFU to acknowledge our tracks before negotiating anyway.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

struct Reporter {
    id: visio_room_core::controller::SessionId,
    events: SessionEvents,
    /// Whether the daemon was last told that no media gets through (across connections).
    media_broken: std::sync::atomic::AtomicBool,
}

impl Reporter {
    fn send(&self, event: SessionEvent) {
        tracing::debug!(session = self.id.0, ?event, "session event");
        let _ = self.events.send((self.id, event));
    }

    /// Tells the daemon whether media gets through, when that changed.
    fn media_flow(&self, flow: crate::media_watch::Flow) {
        use crate::media_watch::Flow;
        let broken = matches!(flow, Flow::Broken(_));
        if self.media_broken.swap(broken, Ordering::Relaxed) == broken {
            return;
        }
        match flow {
            Flow::Broken(reason) => {
                tracing::warn!(%reason, "no media gets through");
                self.send(SessionEvent::MediaInterrupted(reason));
            }
            Flow::Ok => {
                tracing::info!("media gets through again");
                self.send(SessionEvent::MediaRestored);
            }
        }
    }
}

enum Outcome {
    Stopped,
    Ended(EndReason),
    Failed(Failure),
    /// The connection is gone and could not be resumed: rejoin from scratch.
    Lost(String),
    /// The signalling connection is gone (or the server asked for a resume): try to resume
    /// the same participant first. Never leaves [`Connection::run`].
    Resume(String),
}

pub(crate) async fn run(
    request: SessionRequest,
    config: SessionConfig,
    events: SessionEvents,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
) {
    let reporter = Reporter {
        id: request.id,
        events,
        media_broken: Default::default(),
    };
    let mut me = LocalParticipant::new(Sending {
        mic_muted: request.mic_muted,
        camera_enabled: request.camera_enabled,
    });
    let outcome = run_inner(
        &request,
        &config,
        &reporter,
        &mut commands,
        &shared,
        &mut me,
    )
    .await;
    // Tear the media down off the runtime: stopping pipelines waits for their threads.
    let refs = std::mem::take(&mut *shared.refs.lock().unwrap_or_else(|e| e.into_inner()));
    let _ = tokio::task::spawn_blocking(move || drop(refs)).await;
    match outcome {
        Outcome::Stopped => reporter.send(SessionEvent::Stopped),
        Outcome::Ended(reason) => reporter.send(SessionEvent::Ended(reason)),
        Outcome::Failed(failure) => {
            tracing::warn!(kind = failure.kind.as_str(), message = %failure.message, "meeting session failed");
            reporter.send(SessionEvent::Failed(failure))
        }
        Outcome::Lost(reason) | Outcome::Resume(reason) => {
            reporter.send(SessionEvent::Failed(Failure::new(
                FailureKind::Unreachable,
                format!("lost the meeting and could not get back in: {reason}"),
            )))
        }
    }
    // Late commands are answered by nobody; a Stop after the end needs no answer.
    commands.close();
}

/// The one handler of the daemon's commands, in every phase of the session: `None` means
/// stop; otherwise the effects to carry out.
fn on_command(command: Option<Command>, me: &mut LocalParticipant) -> Option<Vec<Effect>> {
    match command? {
        Command::Stop => None,
        Command::MicMuted(m) => Some(me.handle(Input::SetMicMuted(m))),
        Command::CameraEnabled(c) => Some(me.handle(Input::SetCameraEnabled(c))),
    }
}

/// Carries out effects while there is no LiveKit connection (lobby, waiting to rejoin): the
/// pipelines follow; what is for the server is said again by the next connection (the
/// `AddTrack` muted flags).
fn carry_out_offline(effects: Vec<Effect>, media: &Media, reporter: &Reporter) {
    for effect in effects {
        if set_pipelines(media, &effect) {
            continue;
        }
        if let Effect::Report(event) = effect {
            reporter.send(event);
        }
    }
}

async fn run_inner(
    request: &SessionRequest,
    config: &SessionConfig,
    reporter: &Reporter,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    shared: &Arc<Shared>,
    me: &mut LocalParticipant,
) -> Outcome {
    let tls = match &config.tls {
        Some(tls) => tls.clone(),
        None => match crate::tls::client_config(&crate::TlsRoots::default()) {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Failed(Failure::new(FailureKind::NotAvailable, e.to_string()))
            }
        },
    };
    let target = match MeetingTarget::parse(&request.url, &config.allowed_hosts) {
        Ok(t) => t.with_media_hosts(config.media_hosts.clone()),
        Err(e) => return Outcome::Failed(Failure::new(e.kind(), e.to_string())),
    };
    let client = match MeetClient::new(target, tls.clone()) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(Failure::new(e.kind(), e.to_string())),
    };

    // 1. Meet API and lobby, interruptible by Stop.
    let creds = {
        let waiting = || async { reporter.send(SessionEvent::WaitingInLobby) };
        let joining = client.join_credentials(
            &request.display_name,
            config.lobby_poll_interval,
            &config.lobby_cookies,
            waiting,
        );
        tokio::pin!(joining);
        loop {
            tokio::select! {
                result = &mut joining => break result,
                command = commands.recv() => match on_command(command, me) {
                    // No media yet: it starts with what `me` says.
                    Some(effects) => carry_out_offline(effects, &Media::none(), reporter),
                    None => return Outcome::Stopped,
                },
            }
        }
    };
    let mut creds = match creds {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(Failure::new(e.kind(), e.to_string())),
    };
    tracing::info!(room = %creds.room, livekit = %creds.ws_url, "joining the LiveKit room");
    shared.set_media_server(&creds.ws_url);

    // 2. Media.
    let mut media = match &config.media {
        Some(settings) => {
            match start_media(settings, config.min_video_bitrate_bps, me.sending(), shared).await {
                Ok(m) => m,
                Err(message) => return Outcome::Failed(Failure::new(FailureKind::Media, message)),
            }
        }
        None => Media::none(),
    };
    let apis = match Apis::new(config.ice_loopback_only) {
        Ok(a) => a,
        Err(e) => {
            return Outcome::Failed(Failure::new(
                FailureKind::Media,
                format!("cannot set up WebRTC: {e}"),
            ))
        }
    };

    // 3. The connection loop: join, run, rejoin on loss.
    let mut connected_once = false;
    let mut attempt: u32 = 0;
    // Seeded per room and meeting: rooms that lost the same server do not come back in lockstep.
    let seed = seed_from(&request.display_name) ^ seed_from(&request.url);
    let mut rejoin_backoff = Backoff::new(RECONNECT_BACKOFF, seed);
    let mut lost_since: Option<tokio::time::Instant> = None;
    let mut last_loss = String::new();
    let outcome = loop {
        if let Some(since) = lost_since {
            if since.elapsed() > config.reconnect_budget {
                break Outcome::Lost(last_loss);
            }
            let delay = rejoin_backoff.next_delay();
            tracing::info!(
                attempt,
                ?delay,
                "rejoining the meeting after a connection loss"
            );
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            let stop = loop {
                tokio::select! {
                    _ = &mut sleep => break false,
                    command = commands.recv() => match on_command(command, me) {
                        Some(effects) => carry_out_offline(effects, &media, reporter),
                        None => break true,
                    },
                }
            };
            if stop {
                break Outcome::Stopped;
            }
            attempt += 1;
        }
        let connecting = signal::connect(&creds.ws_url, &creds.token, Mode::Join, tls.clone());
        let (signal, inbound, opened) = match connecting.await {
            Ok(ok) => ok,
            Err(e) => {
                let kind = e.kind();
                if !connected_once || !kind.is_retryable() {
                    break Outcome::Failed(Failure::new(kind, e.to_string()));
                }
                last_loss = e.to_string();
                continue;
            }
        };
        let Opened::Join(join) = opened else {
            break Outcome::Failed(Failure::new(
                FailureKind::Protocol,
                "the LiveKit server answered a join with a reconnect response",
            ));
        };
        if !connected_once {
            reporter.send(SessionEvent::Connected);
            connected_once = true;
        } else {
            shared.rejoins.fetch_add(1, Ordering::Relaxed);
        }
        attempt = 0;
        rejoin_backoff.reset();
        let mut conn = Connection::new(
            signal,
            *join,
            Link {
                creds: &mut creds,
                tls: tls.clone(),
                resume_budget: config.resume_budget,
                reconnect_budget: config.reconnect_budget,
            },
            reporter,
            shared,
            &apis,
            me,
        );
        let outcome = conn.run(inbound, &mut media, commands).await;
        conn.close(matches!(outcome, Outcome::Stopped)).await;
        if let Some(receiver) = &media.receiver {
            for id in conn.remote.keys() {
                let _ = receiver.remove_track(id);
            }
        }
        match outcome {
            Outcome::Lost(reason) => {
                tracing::warn!(%reason, "lost the meeting connection");
                last_loss = reason;
                lost_since = Some(tokio::time::Instant::now());
            }
            other => break other,
        }
    };
    for pump in media.pumps.drain(..) {
        pump.abort();
    }
    outcome
}

/// The waits between attempts to get back into the meeting (resume, rejoin), Rust SDK style:
/// 300 ms × 2^n, capped at 7 s, ±15 % jitter.
const RECONNECT_BACKOFF: BackoffPolicy = BackoffPolicy {
    base: Duration::from_millis(300),
    factor: 2,
    max: Duration::from_secs(7),
    jitter_percent: 15,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejoin_backoff_doubles_from_300_ms_and_stays_under_7_s_plus_jitter() {
        let mut backoff = Backoff::new(RECONNECT_BACKOFF, 7);
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(255) && first <= Duration::from_millis(345));
        // 600, 1200, 2400 and 4800 ms (each ±15 %), then the 7 s cap.
        for nominal in [600u64, 1_200, 2_400, 4_800] {
            let delay = backoff.next_delay();
            let (low, high) = (nominal * 85 / 100, nominal * 115 / 100);
            assert!(
                delay >= Duration::from_millis(low) && delay <= Duration::from_millis(high),
                "{delay:?} is not {nominal} ms ± 15 %"
            );
        }
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(delay >= Duration::from_millis(5_950) && delay <= Duration::from_millis(8_050));
        }
    }
}
