//! The run folder: `run.json` (what the run is), `results.jsonl` (appended under a lock as images finish),
//! `images/` (strips and counterexamples), `summary.json` and `report.html` (written atomically at the end).
//!
//! A folder holding another run's files is refused unless the run resumes it (same `run.json`; the keys
//! already in `results.jsonl` are skipped, a line cut short by a kill is redone) or is forced (this run's
//! files are removed first, nothing else). `run.json` records the SHA-256 of every file the run reads (a card's
//! weights too) under `contents`, so a run is not resumed with a card that was retrained in place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gcert_core::io::{refuse_input_as_output, write_atomic, LockedAppend};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::run::Evaluation;
use crate::summary::Summary;

/// The files a run writes in its folder.
pub const RUN_FILES: [&str; 5] = ["run.json", "results.jsonl", "summary.json", "report.html", "images"];
const FORMAT: &str = "gcert-evaluate/1";

/// What to do with a folder that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse a folder holding another run's files.
    Fresh,
    /// Continue the run in the folder (the same settings), skipping what it has.
    Resume,
    /// Remove the run's files in the folder and start over.
    Force,
}

/// What `run.json` records: the inputs and settings a resumed run must match.
pub fn manifest(eval: &Evaluation, images: &Value) -> Value {
    json!({
        "format": FORMAT,
        "generator": eval.generator.path().display().to_string(),
        "encoder": eval.encoder.as_ref().map(|e| e.path().display().to_string()),
        "classifiers": eval.classifiers.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>(),
        "images": images,
        "count": eval.images.len(),
        "mutations": eval.mutations.iter().map(|m| m.mutation.to_string()).collect::<Vec<_>>(),
        "settings": eval.settings,
        "mutation_params": eval.mutation_params,
    })
}

/// An open run folder: the results file locked for appending, and the records it already holds.
#[derive(Debug)]
pub struct RunDir {
    pub dir: PathBuf,
    results: LockedAppend,
    /// Records already in `results.jsonl` (a resumed run), in file order, one per key.
    pub existing: Vec<Record>,
}

impl RunDir {
    /// Opens (creating if needed) the run folder `dir` for `manifest`; `inputs` are files the run reads.
    pub fn open(dir: &Path, mode: Mode, manifest: &Value, inputs: &[PathBuf]) -> Result<RunDir> {
        let manifest = &with_contents(manifest, inputs)?;
        if let Ok(meta) = std::fs::symlink_metadata(dir) {
            if !meta.is_dir() {
                return Err(Error::file(dir, "exists and is not a folder; --out needs a folder"));
            }
        }
        let present: Vec<&str> =
            RUN_FILES.iter().copied().filter(|f| dir.join(f).symlink_metadata().is_ok()).collect();
        let run_json = dir.join("run.json");
        match mode {
            Mode::Fresh if !present.is_empty() => {
                return Err(Error::file(
                    dir,
                    format!(
                        "holds another run's files ({}); pass --resume to continue that run or --force to start over",
                        present.join(", ")
                    ),
                ))
            }
            Mode::Resume if !present.is_empty() => {
                let cap = gcert_core::Limits::current().max_card_bytes;
                let text = gcert_core::io::read_text_capped(&run_json, "a run description", cap).map_err(|_| {
                    Error::file(&run_json, "is missing or unreadable: the folder holds no run this one can resume")
                })?;
                let old: Value = serde_json::from_str(&text)
                    .map_err(|e| Error::file(&run_json, format!("is not a run description: {e}")))?;
                if let Some(field) = first_difference(&old, manifest) {
                    return Err(Error::file(
                        &run_json,
                        format!("was made with other inputs or settings ({field} differs); resume with the same ones, or pass --force to start over"),
                    ));
                }
            }
            Mode::Force => {
                for f in &present {
                    let p = dir.join(f);
                    let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                    removed.map_err(|e| Error::file(&p, format!("cannot remove it: {e}")))?;
                }
            }
            _ => {}
        }
        let files: Vec<PathBuf> = RUN_FILES.iter().map(|f| dir.join(f)).collect();
        let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        for f in &files {
            refuse_input_as_output(f, &inputs)?;
        }
        std::fs::create_dir_all(dir.join("images"))
            .map_err(|e| Error::file(dir, format!("cannot create the run folder: {e}")))?;
        if !run_json.exists() {
            let text = serde_json::to_string_pretty(manifest).expect("a manifest serialises");
            write_atomic(&run_json, false, |w| w.write_all(text.as_bytes()))?;
        }
        let results_path = dir.join("results.jsonl");
        let (mut results, text) =
            LockedAppend::open(&results_path, gcert_core::Limits::current().max_jobs_bytes)?;
        let existing = parse_results(&text, &results_path)?;
        if text.last().is_some_and(|&b| b != b'\n') {
            results.append(b"\n")?;
        }
        Ok(RunDir { dir: dir.to_path_buf(), results, existing })
    }

    /// Runs every image not yet complete, in parallel (rayon's pool), appending each image's records as it
    /// finishes; `progress` sees each image's new records. Returns every record of the run, in key order.
    pub fn run(mut self, eval: &Evaluation, progress: &(dyn Fn(&[Record]) + Sync)) -> Result<Vec<Record>> {
        let done: HashSet<String> = self.existing.iter().map(|r| r.key.clone()).collect();
        let images_dir = self.dir.join("images");
        let results = Mutex::new((&mut self.results, Vec::<Record>::new()));
        let todo = |k: &str| !done.contains(k);
        (0..eval.images.len()).into_par_iter().try_for_each(|i| -> Result<()> {
            let records = eval.evaluate_image(i, &todo, &images_dir)?;
            if records.is_empty() {
                return Ok(());
            }
            let mut text = String::new();
            for r in &records {
                text.push_str(&serde_json::to_string(r).expect("a record serialises"));
                text.push('\n');
            }
            let mut guard = results.lock().map_err(|_| Error::input("a worker panicked"))?;
            guard.0.append(text.as_bytes())?;
            guard.1.extend(records.iter().cloned());
            drop(guard);
            progress(&records);
            Ok(())
        })?;
        let (file, new) = results.into_inner().map_err(|_| Error::input("a worker panicked"))?;
        file.sync()?;
        let mut all = std::mem::take(&mut self.existing);
        all.extend(new);
        let order: std::collections::HashMap<String, usize> =
            eval.keys().into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        all.sort_by_key(|r| order.get(&r.key).copied().unwrap_or(usize::MAX));
        Ok(all)
    }
}

/// Writes `summary.json` and `report.html` of the finished run (atomically, replacing earlier ones).
pub fn finish(dir: &Path, manifest: &Value, records: &[Record], wall_s: f64) -> Result<Summary> {
    let mut summary = Summary::new(records, wall_s);
    // A resumed run adds its time to that of the runs before it.
    let cap = gcert_core::Limits::current().max_jobs_bytes;
    if let Ok(old) = gcert_core::io::read_text_capped(&dir.join("summary.json"), "a summary", cap) {
        if let Some(t) = serde_json::from_str::<Value>(&old).ok().and_then(|v| v["total_wall_s"].as_f64()) {
            summary.total_wall_s += t;
        }
    }
    let text = serde_json::to_string_pretty(&summary).expect("a summary serialises");
    write_atomic(&dir.join("summary.json"), true, |w| w.write_all(text.as_bytes()))?;
    let html = crate::report::render(dir, manifest, &summary, records)?;
    write_atomic(&dir.join("report.html"), true, |w| w.write_all(html.as_bytes()))?;
    Ok(summary)
}

/// The records of a results file, one per key (the first). A line cut short by a kill is ignored (its work is
/// redone); a complete line that is not a record means the file is not this run's: an error.
pub fn parse_results(text: &[u8], path: &Path) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let complete = if text.last() == Some(&b'\n') { lines.len() } else { lines.len().saturating_sub(1) };
    for (n, line) in lines.iter().enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => {
                if seen.insert(r.key.clone()) {
                    out.push(r);
                }
            }
            Err(_) if n + 1 >= complete || !line.ends_with(b"}") => {}
            Err(e) => {
                return Err(Error::file(
                    path,
                    format!("line {} is not a gcert evaluate result ({e}); refusing to append to it", n + 1),
                ))
            }
        }
    }
    Ok(out)
}

/// `manifest` with `contents`: for each input file (and the weights file each model card names), its SHA-256.
fn with_contents(manifest: &Value, inputs: &[PathBuf]) -> Result<Value> {
    let mut files: Vec<PathBuf> = Vec::new();
    // An in-memory network's path is a label, not a file: only files are read.
    for f in inputs.iter().filter(|f| f.is_file()) {
        files.push(f.clone());
        if f.extension().is_some_and(|e| e == "toml") {
            let cap = gcert_core::Limits::current().max_card_bytes;
            let text = gcert_core::io::read_text_capped(f, "a model card", cap)?;
            // Not every .toml input is a card; a card's weights were already accepted when it was loaded.
            if let Ok(card) = gcert_core::loader::parse_card(&text, f) {
                files.push(gcert_core::loader::weights_path(f, &card.weights, true)?);
            }
        }
    }
    let mut contents = serde_json::Map::new();
    for f in files {
        contents.insert(f.display().to_string(), Value::String(sha256(&f)?));
    }
    let mut m = manifest.clone();
    if let Some(o) = m.as_object_mut() {
        o.insert("contents".into(), Value::Object(contents));
    }
    Ok(m)
}

/// The SHA-256 of a regular file, in hex.
fn sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let (mut file, _) = gcert_core::io::open_regular(path, "an input")?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::file(path, format!("cannot read it: {e}")))?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The first top-level field whose value differs between two manifests.
fn first_difference(old: &Value, new: &Value) -> Option<String> {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return Some("the whole description".into());
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).map(|k| format!("'{k}'"))
}
