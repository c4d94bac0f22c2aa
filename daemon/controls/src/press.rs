//! Presses from edges: a button's line edges (already debounced by the kernel when it can)
//! become presses, with a software guard against bounce the kernel let through (a chip that
//! cannot debounce, or uAPI v1).
//!
//! A press is the first *active* edge after the button was released for at least the debounce
//! period; edges closer together than that are bounce. Time is the kernel's event timestamp
//! (monotonic nanoseconds): no clock is read here.

/// One edge of a button line: `active` is `true` when the button went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Kernel timestamp, nanoseconds (monotonic).
    pub at_ns: u64,
    /// The button is now pressed.
    pub active: bool,
}

/// Turns a button's edges into presses.
#[derive(Debug, Clone)]
pub struct PressDetector {
    debounce_ns: u64,
    /// Last edge seen (accepted or not): bounce keeps pushing the quiet period out.
    last_edge_ns: Option<u64>,
    /// The button is down (as far as accepted edges tell).
    down: bool,
}

impl PressDetector {
    /// A detector for a button debounced over `debounce_ms`.
    pub fn new(debounce_ms: u32) -> Self {
        Self {
            debounce_ns: u64::from(debounce_ms) * 1_000_000,
            last_edge_ns: None,
            down: false,
        }
    }

    /// Feeds one edge; `true` when it is a press.
    pub fn edge(&mut self, e: Edge) -> bool {
        let quiet = match self.last_edge_ns {
            None => true,
            Some(t) => e.at_ns.saturating_sub(t) >= self.debounce_ns,
        };
        self.last_edge_ns = Some(e.at_ns);
        if e.active {
            if !self.down && quiet {
                self.down = true;
                return true;
            }
            // Bounce while pressing: stay down.
            self.down = true;
            false
        } else {
            // A release: the next press must come after a quiet period, so release bounce
            // (an active edge right after this one) is never a press.
            self.down = false;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn presses(debounce_ms: u32, edges: &[(u64, bool)]) -> usize {
        let mut d = PressDetector::new(debounce_ms);
        edges
            .iter()
            .filter(|(t, a)| {
                d.edge(Edge {
                    at_ns: *t,
                    active: *a,
                })
            })
            .count()
    }

    #[test]
    fn a_clean_press_and_release_is_one_press() {
        assert_eq!(presses(20, &[(100 * MS, true), (300 * MS, false)]), 1);
    }

    #[test]
    fn contact_bounce_is_one_press() {
        // Press with 5 bounces 1 ms apart, held, release with bounces.
        let edges = [
            (100 * MS, true),
            (101 * MS, false),
            (102 * MS, true),
            (103 * MS, false),
            (104 * MS, true),
            (400 * MS, false),
            (401 * MS, true),
            (402 * MS, false),
        ];
        assert_eq!(presses(20, &edges), 1);
    }

    #[test]
    fn two_presses_apart_are_two() {
        let edges = [
            (100 * MS, true),
            (200 * MS, false),
            (300 * MS, true),
            (400 * MS, false),
        ];
        assert_eq!(presses(20, &edges), 2);
    }

    proptest! {
        /// Any number of deliberate presses (each: a bouncing press, held, a bouncing release,
        /// then rest), bounces shorter than the debounce period: exactly one press each.
        #[test]
        fn bouncy_presses_count_once_each(
            debounce_ms in 5u32..50,
            presses_spec in proptest::collection::vec((0usize..6, 0usize..6), 1..10),
        ) {
            let db = u64::from(debounce_ms) * MS;
            let bounce = db / 8 + 1; // well under the debounce period
            let mut t = 1_000 * MS;
            let mut edges = Vec::new();
            for (press_bounces, release_bounces) in &presses_spec {
                edges.push((t, true));
                for _ in 0..*press_bounces {
                    t += bounce; edges.push((t, false));
                    t += bounce; edges.push((t, true));
                }
                t += 3 * db; // held
                edges.push((t, false));
                for _ in 0..*release_bounces {
                    t += bounce; edges.push((t, true));
                    t += bounce; edges.push((t, false));
                }
                t += 3 * db; // rest
            }
            prop_assert_eq!(presses(debounce_ms, &edges), presses_spec.len());
        }
    }
}
