//! Mute truth, end to end: what the room sends equals what it reports (`MicMuted`), whatever
//! muted it, and across a resume of its signalling connection. The official LiveKit Python SDK
//! is in the meeting and listens to the room's test tone; visio-sim's admin API mutes the room
//! as LiveKit's `MutePublishedTrack` does and drops the room's signalling socket as a network
//! failure would. Private network namespace, loopback only (root), one media test at a time.

use std::time::{Duration, Instant};

use serde_json::Value;
use visio_room_test_support::{
    enter_loopback_only_netns, media_lock, venv_python, Bus, Daemon, Peer, Result, RoomConfig, Sim,
};

const ROOM: &str = "abc-defg-hij";
/// The room's tone as the peer decodes it: above this it is heard...
const HEARD: f64 = 0.01;
/// ...and below this it is silence (the peer's level decays by 5 % every 10 ms).
const SILENT: f64 = 0.002;

struct Meeting {
    sim: Sim,
    bus: Bus,
    _daemon: Daemon,
    peer: Peer,
    /// The room's LiveKit identity.
    identity: String,
}

const NAME: &str = "Salle Discrète";

/// A room in the meeting with the Python SDK listening, the room's tone heard.
fn meeting(peer_args: &[&str]) -> Result<Meeting> {
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new(NAME, sim.host()).sending(320, 240, 15);
    let daemon = Daemon::with_config(&bus, &config)?;
    let mut peer = Peer::python_sdk(&sim.origin, ROOM, "Écoute", 120, peer_args)?;
    peer.expect(30, "the peer in the meeting", |l| l["state"] == "connected")?;
    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    bus.wait_status(30, "in-call", |s| s["state"] == "in-call")?;
    let me = sim.wait_participant(ROOM, NAME, 30, |p| p["identity"].is_string())?;
    let identity = me["identity"].as_str().unwrap_or_default().to_owned();
    let mut m = Meeting {
        sim,
        bus,
        _daemon: daemon,
        peer,
        identity,
    };
    m.expect_level(20, "the room's tone heard", |l| l > HEARD)?;
    Ok(m)
}

impl Meeting {
    fn expect_level(&mut self, secs: u64, what: &str, ok: impl Fn(f64) -> bool) -> Result<f64> {
        let identity = self.identity.clone();
        let line = self.peer.expect(secs, what, |l| {
            Peer::audio_level(l, &identity).is_some_and(&ok)
        })?;
        Ok(Peer::audio_level(&line, &identity).unwrap_or_default())
    }

    /// Every level the peer reports for `secs` seconds.
    fn levels_for(&mut self, secs: u64) -> Vec<f64> {
        let identity = self.identity.clone();
        let until = Instant::now() + Duration::from_secs(secs);
        let mut levels = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.peer.wait_for(left, |_| true) {
                Some(line) => levels.extend(Peer::audio_level(&line, &identity)),
                None => break,
            }
        }
        levels
    }

    fn mic_muted(&self) -> Result<bool> {
        Ok(self.bus.status()?["mic_muted"] == true)
    }

    fn resumes(&self) -> Result<u64> {
        Ok(self.bus.status()?["media"]["resumes"].as_u64().unwrap_or(0))
    }

    /// Drops the room's signalling socket and waits until it has resumed (or rejoined).
    fn drop_signalling_and_wait_back(&mut self) -> Result<()> {
        let before = self.bus.status()?;
        let count = |s: &Value| {
            s["media"]["resumes"].as_u64().unwrap_or(0)
                + s["media"]["rejoins"].as_u64().unwrap_or(0)
        };
        let was = count(&before);
        let reply = self.sim.admin(
            "POST",
            &format!(
                "/sim/v1/rooms/{ROOM}/participants/{}/drop-signalling",
                self.identity
            ),
            None,
        )?;
        assert_eq!(reply.status, 200, "drop-signalling: {reply:?}");
        self.bus.wait_status(20, "the room back in the call", |s| {
            count(s) > was && s["state"] == "in-call"
        })?;
        Ok(())
    }

    fn audio_sid(&self) -> Result<String> {
        let me = self
            .sim
            .participant(ROOM, NAME)?
            .expect("the room is in the meeting");
        Ok(me["tracks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["kind"] == "audio"))
            .and_then(|t| t["sid"].as_str())
            .expect("the room publishes audio")
            .to_owned())
    }

    fn server_says_muted(&self) -> Result<bool> {
        let me = self.sim.participant(ROOM, NAME)?.unwrap_or_default();
        Ok(me["tracks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["kind"] == "audio"))
            .is_some_and(|t| t["muted"] == true))
    }

    /// After a mute: the tone stops, then stays stopped through a resume, and the room says
    /// it is muted all along (to D-Bus and to the server).
    fn silent_through_a_resume(&mut self, how: &str) -> Result<()> {
        let asked = Instant::now();
        self.expect_level(10, &format!("silence after the {how}"), |l| l < SILENT)?;
        println!(
            "{how}: the peer hears silence {:?} after it",
            asked.elapsed()
        );
        assert!(self.mic_muted()?, "{how}: MicMuted is false");
        let resumes = self.resumes()?;
        self.drop_signalling_and_wait_back()?;
        let levels = self.levels_for(5);
        let loudest = levels.iter().copied().fold(0.0, f64::max);
        println!(
            "{how}: after the resume ({} resumes before), 5 s of levels at the peer, loudest {loudest:.4}",
            resumes
        );
        assert!(
            levels.len() >= 3,
            "{how}: the peer reported too little: {levels:?}"
        );
        assert!(
            loudest < SILENT,
            "{how}: the room was heard after the resume while muted: {levels:?}"
        );
        assert!(self.mic_muted()?, "{how}: MicMuted turned false");
        assert!(
            self.server_says_muted()?,
            "{how}: the server thinks the room is unmuted"
        );
        Ok(())
    }
}

#[test]
fn a_muted_room_stays_silent_through_a_resume_whoever_muted_it() -> Result<()> {
    venv_python()?;
    let _one_media_test_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let mut m = meeting(&["--no-media"])?;

    // 1. The server mutes the room (LiveKit `MutePublishedTrack`, what Meet's "mute" button
    //    makes its backend call).
    let sid = m.audio_sid()?;
    m.sim.mute(ROOM, &m.identity, &sid)?;
    m.silent_through_a_resume("server mute")?;

    // People in the room unmute: heard again.
    m.bus.ctl_ok(&["mute", "off"])?;
    m.expect_level(10, "the tone back after the unmute", |l| l > HEARD)?;
    assert!(!m.mic_muted()?);

    // 2. The room mutes itself (D-Bus: a button, the CLI, the screen).
    m.bus.ctl_ok(&["mute", "on"])?;
    m.silent_through_a_resume("D-Bus mute")?;

    // Unmuted again, a resume keeps it heard: the rule holds both ways.
    m.bus.ctl_ok(&["mute", "off"])?;
    m.expect_level(10, "the tone back after the second unmute", |l| l > HEARD)?;
    m.drop_signalling_and_wait_back()?;
    m.expect_level(10, "the tone heard after a resume while unmuted", |l| {
        l > HEARD
    })?;
    assert!(!m.mic_muted()?);
    Ok(())
}

#[test]
fn meets_participant_muted_message_is_a_notification_and_changes_nothing_sent() -> Result<()> {
    // Meet's web app sends `{"type": "participantMuted"}` to the person it muted, after its
    // backend muted the track at the server; the message alone mutes nothing (a toast in
    // Meet). The room must not claim a mute it does not apply, nor the reverse.
    venv_python()?;
    let _one_media_test_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let mut m = meeting(&[
        "--no-media",
        "--send-data",
        r#"{"type": "participantMuted"}"#,
        "--send-to-name",
        NAME,
    ])?;
    // The peer sends the message every second; give it a few.
    let levels = m.levels_for(3);
    assert!(
        levels.iter().all(|l| *l > HEARD),
        "the room went quiet: {levels:?}"
    );
    assert!(
        !m.mic_muted()?,
        "MicMuted claims a mute that is not applied"
    );
    m.drop_signalling_and_wait_back()?;
    m.expect_level(10, "the tone heard after the resume", |l| l > HEARD)?;
    assert!(!m.mic_muted()?);
    assert!(!m.server_says_muted()?);
    Ok(())
}
