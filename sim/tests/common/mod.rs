//! Test designs shared by the integration tests.
#![allow(dead_code)]

pub mod accumulator;
pub mod axi_copy;

/// Property-test cases: a few by default, many with `POCFORGE_FULL=1`.
pub fn cases(default: u32, full: u32) -> u32 {
    if std::env::var("POCFORGE_FULL").as_deref() == Ok("1") {
        full
    } else {
        default
    }
}

use std::path::PathBuf;

/// A fresh folder for one test under Cargo's `target/tmp`. Folders of earlier test processes
/// that are gone are removed first, so runs do not pile up.
pub fn scratch_dir(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sim-tests");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let pid = file_name
                .split('-')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id()
                    && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = root.join(format!("{}-{name}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
