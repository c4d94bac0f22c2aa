//! The harness's one error type: what went wrong setting up or driving a test, and what to do.

use std::path::PathBuf;

/// A failure of the test harness (not of the system under test's assertions).
///
/// `Debug` prints the same text as `Display`, so that a test returning `Result<(), Error>`
/// or calling `.expect()` shows a readable message.
#[derive(thiserror::Error)]
pub enum Error {
    /// A binary of this workspace has not been built.
    #[error("{} is missing: {hint}", path.display())]
    MissingBinary {
        /// Where it was looked for.
        path: PathBuf,
        /// The command that builds it.
        hint: String,
    },
    /// A test dependency outside Rust (a package, a venv, npm modules) is not installed.
    #[error("{what} is missing: {fix}")]
    MissingDependency {
        /// What is missing.
        what: String,
        /// The command that installs it.
        fix: String,
    },
    /// A process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Some other I/O failed (temporary files, sockets, /proc).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A process answered something the harness did not expect.
    #[error("{what}")]
    Unexpected {
        /// What was expected and what came.
        what: String,
    },
    /// Something did not happen in time.
    #[error("{what} not reached within {secs} s; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        secs: u64,
        /// The last observation, to tell why.
        last: String,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn spawn(program: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let program = program.into();
        move |source| Error::Spawn { program, source }
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;
