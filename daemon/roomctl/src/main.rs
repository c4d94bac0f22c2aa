//! `visio-roomctl`: command-line client of `visio-roomd` over D-Bus (`org.visioroom.Room1`).
//!
//! Every command is one D-Bus call or read; errors from the daemon are printed with their D-Bus
//! error name on stderr and the exit status is non-zero, so scripts can rely on it.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use visio_room_bus::{dict_to_json, value_to_json, RoomProxy};

mod calendar;

/// Control the meeting room: join, leave, mute, and see what it is doing.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Talk to a daemon on the session bus instead of the system bus (development).
    #[arg(long, global = true)]
    session_bus: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the room's state, meeting, participants, media and health.
    Status {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Join the meeting at URL.
    Join {
        /// Meeting URL, e.g. `https://visio.numerique.gouv.fr/abc-defg-hij`
        url: String,
    },
    /// Leave the current meeting.
    Leave,
    /// Mute, unmute or toggle the microphone.
    Mute {
        /// on = muted, off = unmuted.
        action: MuteAction,
    },
    /// Turn the camera on or off.
    Camera {
        /// on or off.
        action: OnOff,
    },
    /// Set the speaker volume (0 to 100).
    Volume {
        /// Percent.
        percent: u32,
    },
    /// Print the status, then every change as it happens (until interrupted).
    Watch {
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The room's calendar.
    #[command(subcommand)]
    Calendar(CalendarCommand),
}

#[derive(Debug, Subcommand)]
enum CalendarCommand {
    /// The next meetings, as the daemon plans them.
    Next {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The occurrences of an .ics file in a time window, computed here without the daemon:
    /// what the room would do with that calendar.
    Occurrences {
        /// The calendar file.
        #[arg(long, value_name = "FILE")]
        ics: std::path::PathBuf,
        /// Window start, RFC 3339 (e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        from: String,
        /// Window end (exclusive), RFC 3339.
        #[arg(long)]
        to: String,
        /// Print one JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// The room's time zone for floating and all-day events (IANA or Windows name);
        /// default: the TZ variable, else the system's zone, else UTC.
        #[arg(long)]
        zone: Option<String>,
        /// The room's calendar address: events it declined show as cancelled.
        #[arg(long, value_name = "ADDRESS")]
        room_address: Option<String>,
        /// Configuration file whose visio.allowed_hosts decides which meeting links count
        /// (default: the daemon's).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MuteAction {
    On,
    Off,
    Toggle,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("visio-roomctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("visio-roomctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if let Command::Calendar(CalendarCommand::Occurrences {
        ics,
        from,
        to,
        json,
        zone,
        room_address,
        config,
    }) = &args.command
    {
        return calendar::occurrences(
            ics,
            from,
            to,
            *json,
            zone.as_deref(),
            room_address.clone(),
            config.as_deref(),
        );
    }
    let bus = if args.session_bus {
        "session"
    } else {
        "system"
    };
    let connection = if args.session_bus {
        zbus::Connection::session().await
    } else {
        zbus::Connection::system().await
    }
    .map_err(|e| format!("cannot connect to the {bus} bus: {e}"))?;
    let room = RoomProxy::new(&connection).await.map_err(describe)?;
    let owned = zbus::fdo::DBusProxy::new(&connection)
        .await
        .map_err(describe)?
        .name_has_owner(
            visio_room_bus::BUS_NAME
                .try_into()
                .map_err(|e| format!("{e}"))?,
        )
        .await
        .map_err(|e| describe(e.into()))?;
    if !owned {
        return Err(format!(
            "visio-roomd is not running: nobody owns {} on the {bus} bus{}",
            visio_room_bus::BUS_NAME,
            if args.session_bus {
                ""
            } else {
                " (start it with `systemctl start visio-room`, or use --session-bus for a development daemon)"
            }
        ));
    }
    match args.command {
        Command::Status { json } => {
            let status = status_json(&room).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print_status(&status);
            }
        }
        Command::Join { url } => room.join(&url).await.map_err(describe)?,
        Command::Leave => room.leave().await.map_err(describe)?,
        Command::Mute { action } => {
            let muted = match action {
                MuteAction::On => true,
                MuteAction::Off => false,
                MuteAction::Toggle => !room.mic_muted().await.map_err(describe)?,
            };
            room.set_mic_muted(muted).await.map_err(describe)?;
        }
        Command::Camera { action } => room
            .set_camera_enabled(matches!(action, OnOff::On))
            .await
            .map_err(describe)?,
        Command::Volume { percent } => room.set_volume(percent).await.map_err(describe)?,
        Command::Watch { json } => watch(&connection, &room, json).await?,
        Command::Calendar(CalendarCommand::Next { json }) => {
            let next = room.next_meetings().await.map_err(describe)?;
            calendar::print_next(&next, json);
        }
        Command::Calendar(CalendarCommand::Occurrences { .. }) => unreachable!("handled above"),
    }
    Ok(())
}

/// Turns a zbus error into a message naming the D-Bus error.
fn describe(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(message), _) => format!("{name}: {message}"),
        zbus::Error::MethodError(name, None, _) => name.to_string(),
        zbus::Error::FDO(e) => match *e {
            zbus::fdo::Error::AccessDenied(m) => format!(
                "access denied: {m} (commands need root or membership of the visio-room-admin group)"
            ),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// The whole status as one JSON object (the `status --json` format, see docs/dbus-api.md).
async fn status_json(room: &RoomProxy<'_>) -> Result<Json, String> {
    let meeting = room.meeting().await.map_err(describe)?;
    let participants = room.participants().await.map_err(describe)?;
    let next = room.next_meetings().await.map_err(describe)?;
    Ok(json!({
        "state": room.state().await.map_err(describe)?,
        "meeting": if meeting.is_empty() { Json::Null } else { dict_to_json(&meeting) },
        "mic_muted": room.mic_muted().await.map_err(describe)?,
        "camera_enabled": room.camera_enabled().await.map_err(describe)?,
        "volume": room.volume().await.map_err(describe)?,
        "participants": participants.iter().map(|p| json!({
            "identity": p.identity, "name": p.name, "audio": p.audio, "video": p.video,
        })).collect::<Vec<_>>(),
        "next_meetings": next.iter().map(|m| json!({
            "summary": m.summary, "start": m.start, "end": m.end, "url": m.url,
            "auto_join": m.auto_join,
        })).collect::<Vec<_>>(),
        "media": dict_to_json(&room.media().await.map_err(describe)?),
        "health": dict_to_json(&room.health().await.map_err(describe)?),
        "version": room.version().await.map_err(describe)?,
    }))
}

fn print_status(s: &Json) {
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("State:        {}", text(&s["state"]));
    match s["meeting"].as_object() {
        Some(m) => println!(
            "Meeting:      {} (from {})",
            text(&m["url"]),
            text(&m["source"])
        ),
        None => println!("Meeting:      none"),
    }
    let on_off = |b: &Json, on: &str, off: &str| {
        if b.as_bool().unwrap_or(false) {
            on.to_owned()
        } else {
            off.to_owned()
        }
    };
    println!("Microphone:   {}", on_off(&s["mic_muted"], "muted", "live"));
    println!(
        "Camera:       {}",
        on_off(&s["camera_enabled"], "on", "off")
    );
    println!("Volume:       {}%", text(&s["volume"]));
    let participants = s["participants"].as_array().cloned().unwrap_or_default();
    println!("Participants: {}", participants.len());
    for p in &participants {
        println!("  - {} ({})", text(&p["name"]), text(&p["identity"]));
    }
    let health = &s["health"];
    println!("Health:       {}", text(&health["status"]));
    if let Some(e) = health.get("last_error") {
        println!(
            "  last error: {} ({})",
            text(e),
            text(&health["last_error_kind"])
        );
    }
    println!("Version:      {}", text(&s["version"]));
}

async fn watch(
    connection: &zbus::Connection,
    room: &RoomProxy<'_>,
    json: bool,
) -> Result<(), String> {
    // Subscribe first, then print the snapshot, so no change falls between the two.
    let props = zbus::fdo::PropertiesProxy::builder(connection)
        .destination(visio_room_bus::BUS_NAME)
        .map_err(describe)?
        .path(visio_room_bus::OBJECT_PATH)
        .map_err(describe)?
        .build()
        .await
        .map_err(describe)?;
    let mut changes = props.receive_properties_changed().await.map_err(describe)?;
    let mut errors = room.receive_error().await.map_err(describe)?;
    let mut buttons = room.receive_button_pressed().await.map_err(describe)?;
    let snapshot = status_json(room).await?;
    if json {
        println!("{}", json!({ "snapshot": snapshot }));
    } else {
        print_status(&snapshot);
    }
    loop {
        tokio::select! {
            Some(signal) = changes.next() => {
                let Ok(args) = signal.args() else { continue };
                for (name, value) in args.changed_properties() {
                    let value = value_to_json(value);
                    if json {
                        println!("{}", json!({ "property": name, "value": value }));
                    } else {
                        println!("{name} = {value}");
                    }
                }
            }
            Some(signal) = errors.next() => {
                let Ok(args) = signal.args() else { continue };
                if json {
                    println!("{}", json!({ "error": { "kind": args.kind(), "message": args.message() } }));
                } else {
                    println!("Error ({}): {}", args.kind(), args.message());
                }
            }
            Some(signal) = buttons.next() => {
                let Ok(args) = signal.args() else { continue };
                if json {
                    println!("{}", json!({ "button": args.button() }));
                } else {
                    println!("Button pressed: {}", args.button());
                }
            }
            else => return Err("the daemon went away".into()),
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}
