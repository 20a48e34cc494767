//! What can go wrong with vector suites and results files, said so that the user can act on it.

use std::path::PathBuf;

/// Every error of the vector tooling. Messages name the file and say what was expected.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// What we tried to read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// What we tried to write.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `manifest.json` is malformed, from an unsupported version, or inconsistent.
    #[error("suite manifest {file}: {message}")]
    Manifest {
        /// The manifest's path (or a name for in-memory suites).
        file: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// A data file listed in the manifest does not exist.
    #[error("data file {file} is missing: the manifest lists it with {expected_bytes} bytes")]
    MissingFile {
        /// The data file.
        file: String,
        /// Its size according to the manifest.
        expected_bytes: u64,
    },
    /// A data file's size differs from the manifest's (truncated, extended or replaced).
    #[error(
        "data file {file} has {actual} bytes but the manifest says {expected}: \
         the file is truncated, extended or not the one this manifest was written with"
    )]
    SizeMismatch {
        /// The data file.
        file: String,
        /// Size from the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A data file's SHA-256 differs from the manifest's (modified contents).
    #[error(
        "data file {file} has SHA-256 {actual} but the manifest says {expected}: \
         the file was modified after generation"
    )]
    HashMismatch {
        /// The data file.
        file: String,
        /// Digest from the manifest.
        expected: String,
        /// Digest of the bytes on disk.
        actual: String,
    },
    /// A data file passed its hash check but its contents break the format (a generator bug or
    /// a hand-edited suite whose manifest was re-hashed).
    #[error("data file {file} is malformed: {message}")]
    Corrupt {
        /// The data file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A results file is malformed or does not belong to the suite.
    #[error("results file {file}: {message}")]
    Results {
        /// The results file.
        file: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// No suite of that name exists.
    #[error("unknown suite `{name}`: the suites are {available} (see `golden vectors list`)")]
    UnknownSuite {
        /// The name given.
        name: String,
        /// The valid names, for the message.
        available: String,
    },
    /// An argument is out of range or contradicts another.
    #[error("{0}")]
    Invalid(String),
}
