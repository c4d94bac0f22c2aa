//! A write cut at any moment leaves the file readable, holding the whole old version or the
//! whole new one.
//!
//! The test re-runs its own binary as a child (selected by an environment variable) that
//! rewrites one file through [`write_atomically`] in a loop, each version a different size and
//! self-checking, and says on stdout after each write which version is on disk. The parent kills
//! it with SIGKILL at seeded random moments, many times, then reads the file as the daemon's
//! readers would.
//!
//! SIGKILL ends the process but does not drop the kernel's page cache: what the process wrote
//! stays visible even if it never reached the disk. So this tests *atomicity* (no reader ever
//! sees a partial or mixed file, whatever instruction the writer was cut at), not
//! *durability* (that the last completed write survives losing power): durability is the
//! fsync of the file before the rename and of the directory after it, which only a real power
//! cut (or a block-device fault injector) can prove.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use visio_room_state_file::{temporary_path, write_atomically};

const CHILD: &str = "VISIO_STATE_FILE_POWER_CUT_CHILD";
const NAIVE: &str = "VISIO_STATE_FILE_POWER_CUT_NAIVE";
const FIRST: &str = "VISIO_STATE_FILE_POWER_CUT_FIRST";
const TEST: &str = "a_write_cut_at_any_moment_leaves_the_old_or_the_new_file";

/// Version `n`: a header, a body of a size that varies with `n` (up to 256 KiB, so that a
/// kill lands inside the write of the data often), and a trailer that only a whole file has.
fn version(n: u64) -> Vec<u8> {
    let size = 1 + (n.wrapping_mul(2_654_435_761) % (256 * 1024)) as usize;
    let mut v = format!("version {n}\n").into_bytes();
    v.extend((0..size).map(|i| b'a' + ((i as u64 + n) % 26) as u8));
    v.extend(format!("\nend of version {n}\n").into_bytes());
    v
}

/// The version a file holds, if it is one whole version.
fn whole_version(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let n: u64 = text
        .strip_prefix("version ")?
        .split('\n')
        .next()?
        .parse()
        .ok()?;
    (version(n) == bytes).then_some(n)
}

fn child(path: &Path, naive: bool, first: u64) -> ! {
    for n in first.. {
        if naive {
            // What the daemon must not do: rewrite in place (a serialiser's buffered writes).
            let mut file = std::fs::File::create(path).expect("create");
            for chunk in version(n).chunks(8192) {
                file.write_all(chunk).expect("write");
            }
        } else {
            write_atomically(path, &version(n)).expect("write");
        }
        println!("wrote {n}");
    }
    unreachable!()
}

/// xorshift64*: seeded, so a failure can be replayed with the same seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What the kills found.
#[derive(Debug, Default)]
struct Cuts {
    /// Reads that found no whole version (a torn file).
    torn: u32,
    /// Kills that left a temporary file: cut in the middle of a write.
    mid_write: u32,
    /// Kills after the rename but before the child said so (mostly the directory fsync).
    after_rename: u32,
}

/// Starts the writer `kills` times and kills it at a seeded random moment each time.
fn cut_writes(naive: bool, kills: u32, seed: u64) -> Cuts {
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("intent.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut cuts = Cuts::default();
    for kill in 0..kills {
        // Each child writes its own versions: which one is on disk tells who wrote it.
        let first = u64::from(kill) * 1_000_000;
        let mut command = Command::new(&exe);
        command
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .env(FIRST, first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if naive {
            command.env(NAIVE, "1");
        }
        let mut child = command.spawn().unwrap();
        // Lines are read on a thread: the last version the child said it wrote.
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print "test NAME ... " before the first line, on the same line.
                if let Some((_, n)) = line.split_once("wrote ") {
                    last = Some(n.trim().parse::<u64>().unwrap());
                }
            }
            last
        });
        // Cut somewhere in the first ~40 ms of writing (a few to tens of versions).
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(40_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let reported = reader.join().unwrap();

        if temporary_path(&path).exists() {
            cuts.mid_write += 1;
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                let Some(on_disk) = whole_version(&bytes) else {
                    if !naive {
                        eprintln!("kill {kill} (seed {seed}): no whole version on disk");
                    }
                    cuts.torn += 1;
                    continue;
                };
                // The last version reported, or the next one (renamed, killed before saying
                // so), or, from a child killed before its first rename, the previous child's.
                match reported {
                    Some(r) if on_disk == r => {}
                    Some(r) if on_disk == r + 1 => cuts.after_rename += 1,
                    None if on_disk == first => cuts.after_rename += 1,
                    None if on_disk < first => {}
                    _ => panic!(
                        "kill {kill} (seed {seed}): version {on_disk} on disk, {reported:?} reported written"
                    ),
                }
            }
            // No child has finished a first write yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(reported.is_none(), "kill {kill}: the file vanished")
            }
            Err(e) => panic!("kill {kill}: cannot read the file: {e}"),
        }
    }
    cuts
}

#[test]
fn a_write_cut_at_any_moment_leaves_the_old_or_the_new_file() {
    if let Ok(path) = std::env::var(CHILD) {
        let first = std::env::var(FIRST).unwrap().parse().unwrap();
        child(Path::new(&path), std::env::var_os(NAIVE).is_some(), first);
    }
    let seed: u64 = std::env::var("POWER_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_edc0_ffee);
    let kills: u32 = std::env::var("POWER_CUT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    eprintln!("seed {seed} (POWER_CUT_SEED to replay), {kills} kills");

    // The control: the same cuts on a writer that rewrites in place tear the file, so this
    // test can see a torn file.
    let started = Instant::now();
    let naive = cut_writes(true, kills / 4, seed);
    eprintln!("in-place writer, {} kills: {naive:?}", kills / 4);
    assert!(naive.torn > 0, "the test cannot see a torn file: {naive:?}");

    let cuts = cut_writes(false, kills, seed);
    eprintln!(
        "write_atomically, {kills} kills ({:.1} s in all): {cuts:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(cuts.torn, 0, "torn files: {cuts:?}");
    assert!(
        cuts.mid_write > kills / 20,
        "only {} of {kills} kills landed inside a write: the test does not cut writes",
        cuts.mid_write
    );
}
