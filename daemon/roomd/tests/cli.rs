//! `visio-roomd` command line: configuration checks, as an operator runs them.

use std::process::Command;

fn roomd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_visio-roomd"))
        .args(args)
        .output()
        .expect("visio-roomd runs")
}

fn example_config() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/config.toml"
    )
    .to_owned()
}

#[test]
fn the_shipped_example_configuration_is_accepted() {
    let out = roomd(&["--check-config", "--config", &example_config()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn a_configuration_with_an_unknown_key_is_refused_naming_the_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[room]\nname = \"Salle Jean Moulin\"\n\n[media]\nframerate = 30\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = roomd(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains(":6:"), "line 6 named: {err}");
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn a_wrong_value_names_the_key_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[media]\nresolution = \"720p\"\n").unwrap();
    let out = roomd(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("media.resolution"), "{err}");
    assert!(err.contains("1280x720"), "says what is expected: {err}");
}

#[test]
fn a_missing_explicit_configuration_file_is_an_error() {
    let out = roomd(&["--check-config", "--config", "/nonexistent/visio-room.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/visio-room.toml"), "{err}");
}

#[test]
fn the_configuration_schema_lists_every_key_with_its_type_and_default() {
    let out = roomd(&["--print-config-schema"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let framerate = schema
        .iter()
        .find(|k| k["section"] == "media" && k["key"] == "framerate")
        .expect("media.framerate in the schema");
    assert_eq!(framerate["toml_type"], "integer");
    assert_eq!(framerate["default"], 30);
    assert_eq!(framerate["expected"], "a whole number from 1 to 60");
    // Every key of every section, the calendar's sources included.
    for (section, key) in [
        ("room", "name"),
        ("visio", "allowed_hosts"),
        ("join", "lobby_timeout_s"),
        ("calendar", "sources"),
        ("calendar.sources", "type"),
    ] {
        assert!(
            schema
                .iter()
                .any(|k| k["section"] == section && k["key"] == key),
            "{section}.{key}"
        );
    }
}
