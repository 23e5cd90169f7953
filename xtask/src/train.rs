//! `cargo xtask train-fixtures`: trains every fixture model into `fixtures/trained/` (through the
//! `gcert-torch` binary, so that xtask itself never links libtorch).

use anyhow::Result;

use crate::data::mnist_file;
use crate::setup::{cache_dir, gcert_torch};

pub fn run_train_fixtures(device: &str, fresh: bool, smoke: bool) -> Result<()> {
    let ck = cache_dir().join("checkpoints").join(if smoke { "fixtures-smoke" } else { "fixtures" });
    if fresh && ck.exists() {
        std::fs::remove_dir_all(&ck)?;
    }
    let out = if smoke {
        cache_dir().join("fixtures-smoke")
    } else {
        crate::root().join("fixtures").join("trained")
    };
    if !mnist_file().exists() {
        crate::data::run_data(false)?;
    }
    gcert_torch(&[
        "--device".into(),
        device.into(),
        "fixtures".into(),
        "--data".into(),
        mnist_file().display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--schedule".into(),
        if smoke { "smoke" } else { "full" }.into(),
        "--checkpoint".into(),
        ck.display().to_string(),
    ])
}
