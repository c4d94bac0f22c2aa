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

/// A key as `docs/configuration.md` documents it: a row of a section's table.
struct DocumentedKey {
    /// `media.framerate`.
    dotted: String,
    /// The row's default column (`\`30\``, `none`, `required`).
    default: String,
    /// The line of the reference, for messages.
    line: usize,
}

/// Every key of `docs/configuration.md`: the rows of each section's table (`## \`[media]\``,
/// `### \`[[calendar.sources]]\``), and the repeatable tables themselves as keys of their parent
/// (`calendar.sources`).
fn documented_keys(reference: &str) -> Vec<DocumentedKey> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for (index, line) in reference.lines().enumerate() {
        let header = line
            .strip_prefix("## `[")
            .or_else(|| line.strip_prefix("### `["));
        if let Some(header) = header {
            let name = header.split(']').next().unwrap().trim_start_matches('[');
            section = name.to_owned();
            if header.starts_with('[') {
                // `[[calendar.sources]]` is the `sources` key of `[calendar]`.
                keys.push(DocumentedKey {
                    dotted: name.to_owned(),
                    default: "`[]`".into(),
                    line: index + 1,
                });
            }
        } else if line.starts_with("## ") {
            section.clear();
        } else if let Some(rest) = line.strip_prefix("| `") {
            assert!(
                !section.is_empty(),
                "docs/configuration.md:{}: a key row outside a section",
                index + 1
            );
            let cells: Vec<&str> = rest.split(" | ").collect();
            keys.push(DocumentedKey {
                dotted: format!("{section}.{}", cells[0].trim_end_matches('`')),
                default: cells.get(2).map_or("", |c| c.trim()).to_owned(),
                line: index + 1,
            });
        }
    }
    keys
}

/// What is wrong with `reference` (the text of `docs/configuration.md`) against the keys the
/// daemon reads: a key without a row, a row for no key, a default that disagrees.
fn reference_problems(reference: &str) -> Vec<String> {
    let documented = documented_keys(reference);
    let schema = Config::schema();
    let mut problems = Vec::new();
    for key in &schema {
        if !documented.iter().any(|d| d.dotted == key.dotted()) {
            problems.push(format!(
                "{} is a configuration key but has no row in docs/configuration.md (add one to the [{}] table: key, type, default, meaning, example)",
                key.dotted(),
                key.section
            ));
        }
    }
    for d in &documented {
        let Some(key) = schema.iter().find(|k| k.dotted() == d.dotted) else {
            problems.push(format!(
                "docs/configuration.md:{}: {} is documented but is not a configuration key (remove the row, or declare the key in daemon/core/src/config/)",
                d.line, d.dotted
            ));
            continue;
        };
        // The default column says what the schema says: the value in backquotes, or words
        // ("none", "required", "the system's zone") when the key has no default value.
        let expected = key.default.as_ref().map(|v| format!("`{v}`"));
        let agrees = match &expected {
            Some(value) => &d.default == value,
            None => !d.default.starts_with('`'),
        };
        if !agrees {
            problems.push(format!(
                "docs/configuration.md:{}: {} default is documented as {}, the key's default is {}",
                d.line,
                d.dotted,
                d.default,
                expected.as_deref().unwrap_or("not set")
            ));
        }
    }
    if documented.len() != schema.len() {
        problems.push(format!(
            "docs/configuration.md has {} key rows for {} keys (a key documented twice?)",
            documented.len(),
            schema.len()
        ));
    }
    problems
}

fn reference() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    fs::read_to_string(root.join("docs/configuration.md")).unwrap()
}

#[test]
fn every_key_is_documented_and_every_documented_key_exists() {
    let problems = reference_problems(&reference());
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_key_of_the_reference_is_in_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example = fs::read_to_string(root.join("docs/examples/config.toml")).unwrap();
    for key in Config::schema() {
        if key.dotted() == "calendar.sources" {
            // Shown as `[[calendar.sources]]` tables.
            assert!(example.contains("[[calendar.sources]]"));
            continue;
        }
        // Set, or shown in a comment (optional keys and repeatable sections).
        let shown = example.lines().any(|l| {
            l.trim_start_matches('#')
                .trim_start()
                .starts_with(&format!("{} ", key.key))
        });
        assert!(
            shown,
            "{} is documented but missing from docs/examples/config.toml",
            key.dotted()
        );
    }
}

#[test]
fn the_docs_check_finds_an_undocumented_key_an_unknown_key_and_a_wrong_default() {
    // The check above must be able to fail.
    let reference = reference();
    let without_framerate: String = reference
        .lines()
        .filter(|l| !l.starts_with("| `framerate`"))
        .map(|l| format!("{l}\n"))
        .collect();
    let problems = reference_problems(&without_framerate);
    assert!(
        problems[0].starts_with("media.framerate is a configuration key but has no row"),
        "{problems:?}"
    );
    let with_colour = reference.replace(
        "| `framerate` |",
        "| `colour` | string | `\"blue\"` | x | x |\n| `framerate` |",
    );
    let problems = reference_problems(&with_colour);
    assert!(
        problems[0].contains(": media.colour is documented but is not a configuration key"),
        "{problems:?}"
    );
    let wrong_default = reference.replace(
        "| `show_next` | whole number, 1–50 | `5` |",
        "| `show_next` | whole number, 1–50 | `7` |",
    );
    let problems = reference_problems(&wrong_default);
    assert!(
        problems[0]
            .ends_with("calendar.show_next default is documented as `7`, the key's default is `5`"),
        "{problems:?}"
    );
    let sources_gone = reference.replace("### `[[calendar.sources]]` (repeatable)", "### Sources");
    assert!(reference_problems(&sources_gone)
        .iter()
        .any(|p| p.starts_with("calendar.sources is a configuration key")),);
}
