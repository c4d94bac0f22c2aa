//! Test harness shared by the end-to-end tests and benchmarks: a private D-Bus daemon,
//! `visio-sim`, `visio-roomd` and the official-client peers.
