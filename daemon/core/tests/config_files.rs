//! The configuration as the daemon reads it: real files on disk, as an operator or an image
//! build leaves them.

use std::fs;
use std::path::Path;

use visio_room_core::config::{Config, ConfigSource, VideoSource, DEFAULT_CONFIG_PATH};
use visio_room_core::meeting_url::MeetingUrl;

fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    path
}

#[test]
fn room_configured_by_an_operator_file_is_loaded_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.toml",
        b"[room]\nname = \"Salle Jean Moulin\"\n[visio]\ndefault_meeting = \"https://visio.numerique.gouv.fr/ABCDEFGHIJ\"\n[media]\nvideo_source = \"/dev/v4l/by-id/usb-Logitech-video-index0\"\n",
    );
    let (config, source) = Config::load_or_default(Some(&path)).unwrap();
    assert_eq!(source, ConfigSource::File(path));
    assert_eq!(config.room.name, "Salle Jean Moulin");
    assert_eq!(
        config.media.video_source,
        VideoSource::Device("/dev/v4l/by-id/usb-Logitech-video-index0".into())
    );
    let meeting = config
        .visio
        .default_meeting
        .clone()
        .expect("default meeting");
    assert_eq!(
        meeting.as_str(),
        "https://visio.numerique.gouv.fr/abc-defg-hij"
    );
    // The default meeting is what the allow-list would accept anyway.
    assert_eq!(
        MeetingUrl::parse(meeting.as_str(), &config.visio.allow_list()).unwrap(),
        meeting
    );
}

#[test]
fn a_room_without_a_file_runs_on_the_defaults() {
    // Only meaningful where the appliance's file is absent (any build machine).
    if Path::new(DEFAULT_CONFIG_PATH).exists() {
        panic!("{DEFAULT_CONFIG_PATH} exists on this machine; this test needs it absent");
    }
    let (config, source) = Config::load_or_default(None).unwrap();
    assert_eq!(source, ConfigSource::Defaults);
    assert_eq!(config, Config::default());
    assert_eq!(config.room.name, "Visio Room");
}

#[test]
fn a_file_named_with_config_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = Config::load_or_default(Some(&missing)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: cannot read the configuration file: ",
            missing.display()
        )),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");
}

#[test]
fn a_directory_given_as_the_file_is_refused_with_the_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("cannot read the configuration file"), "{e}");
    assert!(e.contains("directory"), "{e}");
}

#[test]
fn a_file_saved_in_latin1_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    // "Salle Réunion" in ISO-8859-1: é is the single byte 0xE9.
    let path = write(
        dir.path(),
        "latin1.toml",
        b"[room]\nname = \"Salle R\xe9union\"\n",
    );
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.position, Some((2, 16)), "{e}");
    assert!(
        e.to_string().contains("not UTF-8 text; save it as UTF-8"),
        "{e}"
    );
}

#[test]
fn a_file_edited_on_windows_is_accepted_and_errors_keep_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    // Byte-order mark and CRLF line ends, as Notepad may save it.
    let good = write(
        dir.path(),
        "windows.toml",
        "\u{feff}[room]\r\nname = \"Salle Réunion\"\r\n[media]\r\nframerate = 25\r\n".as_bytes(),
    );
    let config = Config::load(&good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.room.name, "Salle Réunion");
    assert_eq!(config.media.framerate, 25);
    let bad = write(
        dir.path(),
        "windows-bad.toml",
        "\u{feff}[room]\r\nname = \"Salle\"\r\n[media]\r\nframerate = 75\r\n".as_bytes(),
    );
    let e = Config::load(&bad).unwrap_err().to_string();
    assert!(
        e.ends_with(
            "windows-bad.toml:4:13: media.framerate: expected a whole number from 1 to 60, got 75"
        ),
        "{e}"
    );
}

#[test]
fn the_documented_example_loads_and_says_what_the_defaults_say() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/config.toml");
    let config = Config::load(&example).unwrap_or_else(|e| panic!("{e}"));
    // The example writes out the defaults, apart from the room's name.
    let mut expected = Config::default();
    expected.room.name = "Salle Jean Moulin".into();
    assert_eq!(config, expected);
}

#[test]
fn every_key_of_the_reference_is_in_the_example_and_accepted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let example = fs::read_to_string(root.join("docs/examples/config.toml")).unwrap();
    let mut section = String::new();
    let mut documented = 0;
    for line in reference.lines() {
        if let Some(name) = line
            .strip_prefix("## `[")
            .and_then(|l| l.strip_suffix("]`"))
        {
            section = format!("[{name}]");
        } else if let Some(name) = line
            .strip_prefix("### `[[")
            .and_then(|l| l.split("]]`").next())
        {
            section = format!("[[{name}]]");
        } else if let Some(rest) = line.strip_prefix("| `") {
            let key = rest.split('`').next().unwrap();
            documented += 1;
            // Set, or shown in a comment (optional keys and repeatable sections).
            let shown = example.lines().any(|l| {
                l.trim_start_matches('#')
                    .trim_start()
                    .starts_with(&format!("{key} "))
            });
            assert!(
                shown,
                "{section} {key} is documented but missing from docs/examples/config.toml"
            );
            // An unknown key would be refused: a documented key must not be.
            let probe = format!("{section}\n{key} = 0\n");
            let e = Config::from_toml_str(&probe, Path::new("probe.toml"));
            if let Err(e) = e {
                assert!(!e.message.contains("unknown key"), "{section} {key}: {e}");
            }
        }
    }
    assert_eq!(documented, 30, "keys documented in docs/configuration.md");
}
