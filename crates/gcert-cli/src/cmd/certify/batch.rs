//! `gcert certify --batch jobs.jsonl`: many jobs over the same models, in parallel, resumable, shardable.
//!
//! Every job line is parsed and its inputs read before any work starts, so a malformed line fails the run at
//! once (naming the file and line). Results go out one JSON line per job as jobs finish; with `--out`, jobs
//! whose id is already in the results file are skipped and new results are appended.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use gcert_core::Direction;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Deserialize;

use gcert_certify::job::{Job, JobSegment, Models};

use super::{certificate_json, options, Args};
use crate::cmd::read_input;

/// A vector given inline or as a `.npy` path (relative to the jobs file).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Vector {
    Values(Vec<f64>),
    Path(PathBuf),
}

/// One line of a jobs file (docs/certify.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobLine {
    id: Option<String>,
    latent: Option<Vector>,
    direction: Option<Vector>,
    eps: Option<f64>,
    from: Option<Vector>,
    to: Option<Vector>,
    two_sided: Option<bool>,
    label: Option<usize>,
    method: Option<String>,
}

/// `i/n` with `i < n`.
fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let parsed = s.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => bail!("--shard must be i/n with 0 <= i < n (e.g. 0/4), found '{s}'"),
    }
}

fn vector(
    v: &Vector,
    base: &Path,
    shape: &[usize],
    what: &str,
    files: &mut Vec<PathBuf>,
) -> Result<Vec<f64>> {
    match v {
        Vector::Values(values) => {
            let len: usize = shape.iter().product();
            if values.len() != len {
                bail!("{what} needs {len} values, found {}", values.len());
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!("{what} has a non-finite value at index {i}");
            }
            Ok(values.clone())
        }
        Vector::Path(p) => {
            let path = base.join(p);
            let values = read_input(&path, shape, what);
            files.push(path);
            values
        }
    }
}

fn method(name: &str) -> Result<gcert_certify::Method> {
    use gcert_certify::Method;
    Ok(match name {
        "complete" => Method::Complete,
        "incomplete" => Method::Incomplete,
        "quantitative" => Method::Quantitative,
        other => bail!("unknown method '{other}' (complete, incomplete or quantitative)"),
    })
}

/// Parses one job line against the models; `args` gives the defaults. The arrays it names are added to `files`.
fn parse_job(
    line: &str,
    base: &Path,
    models: &Models,
    args: &Args,
    files: &mut Vec<PathBuf>,
) -> Result<(Option<String>, Job)> {
    let j: JobLine = serde_json::from_str(line).context("malformed job")?;
    let segment = match (&j.latent, &j.direction, j.eps, &j.from, &j.to) {
        (Some(z), Some(d), Some(eps), None, None) => {
            let Some(shape) = models.latent_shape() else {
                bail!("a latent job needs --generator");
            };
            let direction = Direction::new(vector(d, base, &shape, "the direction", files)?)?;
            JobSegment::Latent { latent: vector(z, base, &shape, "the latent point", files)?, direction, eps }
        }
        (None, None, None, Some(a), Some(b)) => JobSegment::Pixels {
            from: vector(a, base, models.image_shape(), "the segment start", files)?,
            to: vector(b, base, models.image_shape(), "the segment end", files)?,
        },
        _ => bail!("a job needs either latent, direction and eps, or from and to"),
    };
    let job = Job {
        segment,
        two_sided: j.two_sided.unwrap_or(args.two_sided),
        label: j.label.or(args.label),
        method: match &j.method {
            Some(m) => method(m)?,
            None => args.method.into(),
        },
    };
    Ok((j.id, job))
}

/// Ids of the results in the text of a results file. A complete line that is not a result (a JSON object with
/// an `id` and a `verdict`) means the file is something else (a model card, a jobs file, ...): an error, so that
/// nothing is appended to it. A line that starts like a result but does not parse is a run killed mid-write:
/// it is ignored and its job redone.
fn done_ids(text: &[u8], path: &Path) -> Result<HashSet<String>> {
    let mut done = HashSet::new();
    let not_results = |number: usize, why: &str| {
        anyhow::anyhow!(
            "{}: line {number} {why}; this is not a gcert results file, refusing to append results to it",
            path.display()
        )
    };
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(trimmed) {
            Ok(v) => {
                let id = v.get("id").and_then(|id| id.as_str());
                match id {
                    Some(id) if v.get("verdict").is_some_and(|v| v.is_string()) => {
                        done.insert(id.to_string());
                    }
                    _ => {
                        return Err(not_results(
                            i + 1,
                            "is not a result (a JSON object with an id and a verdict)",
                        ))
                    }
                }
            }
            Err(_) if trimmed.starts_with(b"{") => {}
            Err(_) => return Err(not_results(i + 1, "is not JSON")),
        }
    }
    Ok(done)
}

/// Where results go: a locked results file, or stdout.
enum Out {
    File(gcert_core::io::LockedAppend),
    Stdout(std::io::Stdout),
}

impl Out {
    fn write_line(&mut self, line: &str, name: &str) -> Result<()> {
        match self {
            Out::File(f) => Ok(f.append(line.as_bytes())?),
            Out::Stdout(s) => s
                .write_all(line.as_bytes())
                .and_then(|_| s.flush())
                .with_context(|| format!("cannot write {name}")),
        }
    }
}

pub fn run(args: &Args, models: &Models, jobs_path: &Path) -> Result<()> {
    let limits = gcert_core::Limits::current();
    let text = gcert_core::io::read_text_capped(jobs_path, "a jobs file", limits.max_jobs_bytes)?;
    let base = jobs_path.parent().unwrap_or(Path::new("."));
    let (shard, shards) = args.shard.as_deref().map(parse_shard).transpose()?.unwrap_or((0, 1));
    let mut jobs = Vec::new();
    let mut ids = HashSet::new();
    let mut files = super::input_files(args);
    for (index, (number, line)) in
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(n, l)| (n + 1, l)).enumerate()
    {
        let (id, job) = parse_job(line, base, models, args, &mut files)
            .with_context(|| format!("{}: line {number}", jobs_path.display()))?;
        // Every check a job's certification would make runs now, before any job starts or any result is
        // written.
        models.problem(&job).with_context(|| format!("{}: line {number}", jobs_path.display()))?;
        let id = id.unwrap_or_else(|| number.to_string());
        if !ids.insert(id.clone()) {
            bail!("{}: line {number}: job id '{id}' is used twice", jobs_path.display());
        }
        if index % shards == shard {
            jobs.push((id, job));
        }
    }
    let (done, out) = match &args.out {
        Some(out) => {
            let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
            gcert_core::io::refuse_input_as_output(out, &inputs)?;
            // Locked until this run ends: a second run on the same file refuses instead of duplicating.
            let (mut file, text) = gcert_core::io::LockedAppend::open(out, limits.max_jobs_bytes)?;
            let done = done_ids(&text, out)?;
            // A run killed mid-line leaves a partial line; start on a fresh one.
            if text.last().is_some_and(|&b| b != b'\n') {
                file.append(b"\n")?;
            }
            (done, Out::File(file))
        }
        None => (HashSet::new(), Out::Stdout(std::io::stdout())),
    };
    let total = jobs.len();
    jobs.retain(|(id, _)| !done.contains(id));
    if total > jobs.len() {
        eprintln!("{} of {total} jobs already have results; skipping them", total - jobs.len());
    }
    let sink = Mutex::new(out);
    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} jobs, {elapsed} elapsed, eta {eta}")
            .expect("valid template"),
    );
    let opts = options(args);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let out_name = args.out.as_ref().map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    pool.install(|| {
        jobs.par_iter().try_for_each(|(id, job)| -> Result<()> {
            let cert = models.certify(job, opts).with_context(|| format!("job '{id}'"))?;
            let mut value = certificate_json(&cert);
            value["id"] = serde_json::Value::String(id.clone());
            let line = format!("{}\n", serde_json::to_string(&value)?);
            let mut w = sink.lock().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
            w.write_line(&line, &out_name)?;
            bar.inc(1);
            Ok(())
        })
    })?;
    bar.finish_and_clear();
    if let Out::File(f) = sink.into_inner().map_err(|_| anyhow::anyhow!("a worker panicked"))? {
        f.sync()?;
    }
    Ok(())
}
