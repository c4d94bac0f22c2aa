//! Any bytes given as a calendar: reading and expanding them must not panic or hang (the
//! daemon reads calendars fetched from servers it does not control).
#![no_main]

use libfuzzer_sys::fuzz_target;
use visio_room_schedule::{occurrences, parse_instant, ExpandOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A two-year window, as the daemon uses; wide enough to exercise long expansions.
    let from = parse_instant("2024-01-01").expect("valid");
    let to = parse_instant("2026-01-01").expect("valid");
    let set = occurrences(&text, from, to, &ExpandOptions::default());
    for o in &set.occurrences {
        assert!(o.start_utc <= o.end_utc, "an occurrence ends before it starts");
    }
});
