//! Differential test against the Python reference `recurring-ical-events` on the `.ics` files
//! shipped in the `recurring-ical-events` and `icalendar` source distributions.
//!
//! Needs `scripts/deps.d/schedule.sh` (venv + corpus under `hw-tests/.work/`). Prints the
//! agreement rate, writes every disagreement to `hw-tests/.work/calendar-differential.txt`,
//! and fails below a floor. The categories of the remaining disagreements are explained in
//! `docs/calendar.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use visio_room_schedule::{occurrences, parse_instant, ExpandOptions, Occurrence};

/// Files on which both implementations must give exactly the same occurrences, among the
/// files the reference itself can read. Measured: see docs/calendar.md.
const FILE_AGREEMENT_FLOOR: f64 = 0.93;

const FROM: &str = "1990-01-01";
const TO: &str = "2035-01-01";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus_files() -> Vec<PathBuf> {
    let corpus = repo().join("hw-tests/.work/calendar-corpus");
    let mut files = Vec::new();
    let mut dirs = vec![corpus.clone()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "ics") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(
        files.len() > 100,
        "the calendar corpus is missing from {} (found {} .ics files): run \
         `scripts/deps.d/schedule.sh .` from the repository root",
        corpus.display(),
        files.len()
    );
    files
}

fn python() -> PathBuf {
    let py = repo().join("hw-tests/.work/venv-calendar/bin/python");
    assert!(
        py.exists(),
        "the recurring-ical-events venv is missing ({}): run `scripts/deps.d/schedule.sh .` \
         from the repository root",
        py.display()
    );
    py
}

/// Occurrence key shared by both sides: (uid, start, end).
type Key = (String, String, Option<String>);

fn key(o: &Occurrence) -> Key {
    let fmt = |s: &str, utc: chrono::DateTime<chrono::Utc>| {
        if o.floating {
            // The room's zone is UTC here, so the UTC instant is the wall-clock time.
            format!("floating:{}", utc.format("%Y-%m-%dT%H:%M:%S"))
        } else {
            s.to_owned()
        }
    };
    (
        o.uid.clone(),
        fmt(&o.start, o.start_utc),
        Some(fmt(&o.end, o.end_utc)),
    )
}

fn reference(files: &[PathBuf]) -> BTreeMap<PathBuf, Result<Vec<Key>, String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/rie_occurrences.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(FROM)
        .arg(TO)
        .args(files)
        .output()
        .expect("run the reference script");
    assert!(
        out.status.success(),
        "the reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("reference JSON line");
        let file = PathBuf::from(v["file"].as_str().unwrap());
        let result = match v["error"].as_str() {
            Some(e) => Err(e.to_owned()),
            None => Ok(v["occurrences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["uid"].as_str().unwrap_or_default().to_owned(),
                        o["start"].as_str().unwrap_or_default().to_owned(),
                        o["end"].as_str().map(str::to_owned),
                    )
                })
                .collect()),
        };
        map.insert(file, result);
    }
    map
}

#[test]
fn agrees_with_recurring_ical_events_on_its_own_test_calendars() {
    let files = corpus_files();
    let reference = reference(&files);
    let from = parse_instant(FROM).unwrap();
    let to = parse_instant(TO).unwrap();
    let opts = ExpandOptions::default();

    let (mut agree, mut compared, mut reference_failed) = (0usize, 0usize, 0usize);
    let (mut same_occ, mut union_occ) = (0usize, 0usize);
    let mut report = String::new();
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        let ours = occurrences(&text, from, to, &opts);
        let name = file
            .strip_prefix(repo())
            .unwrap_or(file)
            .display()
            .to_string();
        let theirs = match reference.get(file) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                reference_failed += 1;
                report.push_str(&format!(
                    "== {name}: reference failed ({e}); ours: {} occurrences, {} problems\n",
                    ours.occurrences.len(),
                    ours.errors.len()
                ));
                continue;
            }
            None => panic!("no reference result for {name}"),
        };
        compared += 1;
        let mut ours_keys: Vec<Key> = ours.occurrences.iter().map(key).collect();
        let mut theirs_keys = theirs.clone();
        // The reference sometimes leaves DTEND out: compare starts only then.
        for k in &mut theirs_keys {
            if k.2.is_none() {
                if let Some(o) = ours_keys.iter().find(|o| o.0 == k.0 && o.1 == k.1) {
                    k.2 = o.2.clone();
                }
            }
        }
        ours_keys.sort();
        theirs_keys.sort();
        let only_ours: Vec<&Key> = ours_keys
            .iter()
            .filter(|k| !theirs_keys.contains(k))
            .collect();
        let only_theirs: Vec<&Key> = theirs_keys
            .iter()
            .filter(|k| !ours_keys.contains(k))
            .collect();
        let common = ours_keys.len() - only_ours.len();
        same_occ += common;
        union_occ += common + only_ours.len() + only_theirs.len();
        if only_ours.is_empty() && only_theirs.is_empty() && ours_keys.len() == theirs_keys.len() {
            agree += 1;
            continue;
        }
        report.push_str(&format!(
            "== {name}: ours {} / reference {} occurrences ({} only ours, {} only reference); \
             problems: {:?}\n",
            ours_keys.len(),
            theirs_keys.len(),
            only_ours.len(),
            only_theirs.len(),
            ours.errors
                .iter()
                .map(|e| &e.message)
                .take(3)
                .collect::<Vec<_>>()
        ));
        for k in only_ours.iter().take(30) {
            report.push_str(&format!("   only ours:      {k:?}\n"));
        }
        for k in only_theirs.iter().take(30) {
            report.push_str(&format!("   only reference: {k:?}\n"));
        }
    }
    let rate = agree as f64 / compared as f64;
    let occ_rate = same_occ as f64 / union_occ.max(1) as f64;
    let summary = format!(
        "calendar differential: {agree}/{compared} files agree exactly ({:.1} %), occurrences \
         in common {same_occ}/{union_occ} ({:.1} %); reference could not read {reference_failed} \
         of {} files",
        rate * 100.0,
        occ_rate * 100.0,
        files.len()
    );
    println!("{summary}");
    let report_path = repo().join("hw-tests/.work/calendar-differential.txt");
    std::fs::write(&report_path, format!("{summary}\n{report}")).unwrap();
    println!("disagreements written to {}", report_path.display());
    assert!(
        rate >= FILE_AGREEMENT_FLOOR,
        "agreement {:.1} % is below the floor {:.1} %; see {}",
        rate * 100.0,
        FILE_AGREEMENT_FLOOR * 100.0,
        report_path.display()
    );
}
