//! `gcert train` runs the `gcert-train` binary (crate gcert-regulate, built with libtorch) found beside `gcert`
//! or on `PATH`, passing every argument through; without it, one clear error says how to build it.

use std::path::Path;
use std::process::Command;

#[test]
fn train_forwards_to_gcert_train_or_says_how_to_build_it() {
    let gcert = Path::new(env!("CARGO_BIN_EXE_gcert"));
    let beside = gcert.with_file_name(format!("gcert-train{}", std::env::consts::EXE_SUFFIX));
    let o = Command::new(gcert).args(["train", "--help"]).env("PATH", "").output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if beside.is_file() {
        // The trainer's own help, reached through `gcert train`: its flags, not gcert's.
        assert!(o.status.success(), "{err}");
        assert!(out.contains("Usage: gcert-train") && out.contains("--regulate"), "{out}");
        // Its errors and exit code come back unchanged.
        let o = Command::new(gcert).args(["train", "gan", "--out", "x.png"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--out must name a .toml model card"));
    } else {
        assert_eq!(o.status.code(), Some(2), "{out}{err}");
        assert!(
            err.starts_with("error: ") && err.contains("cargo build --release -p gcert-regulate"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
