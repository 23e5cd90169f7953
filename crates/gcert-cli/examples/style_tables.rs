//! Stylized mutations over real MNIST test digits (issue 10): the paper's Table 7 analogue (for each classifier
//! and style, the fraction of the digits certified at α = 0.2, 0.5 and 0.8, and the mean largest tolerance),
//! identity at α = 0, the judged accuracy at α = 1, and continuity in α with and without the regulation term;
//! writes a markdown page. Run by `cargo xtask styles` (an example of the CLI crate, not part of xtask, so
//! that xtask links no BLAS):
//!
//! ```text
//! cargo run --release -p gcert-cli --example style_tables -- --mnist FILE --out docs/stylized-tables.md \
//!     --style fog=fixtures/trained/translator-fog.toml:fixtures/trained/translator-fog-unregulated.toml ...
//! ```
//!
//! The digits are the first `--digits` (Table 7, continuity) and `--judge-digits` (identity, accuracy) of the
//! fixed seeded test split, read by `gcert_evaluate::Images::mnist_test` (the split the classifiers were tested
//! on). Each certification is complete (the hybrid default) along `α ∈ [0, 1]` with the digit's true label,
//! so one run answers every α: certified at α exactly when the largest tolerance is at least α (a digit the
//! classifier gets wrong at α = 0 has tolerance 0).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gcert_certify::job::{Job, JobSegment, Models};
use gcert_certify::{pixel_bounds, Method, Options};
use gcert_core::{Network, Translator};
use gcert_evaluate::images::Images;
use rayon::prelude::*;

#[derive(Debug, Clone, clap::Parser)]
struct Settings {
    /// NAME=REGULATED.toml[:UNREGULATED.toml], once per style
    #[arg(long = "style", required = true)]
    styles: Vec<String>,
    /// Classifier cards (default: the four committed ones)
    #[arg(long = "classifier")]
    classifiers: Vec<PathBuf>,
    /// The classifier that judges T(x, 1)
    #[arg(long, default_value = "fixtures/trained/classifier-conv4-aug.toml")]
    judge: PathBuf,
    /// Test digits of Table 7 and the continuity measurement
    #[arg(long, default_value_t = 100)]
    digits: usize,
    /// Test digits of the identity and accuracy measurements
    #[arg(long, default_value_t = 1000)]
    judge_digits: usize,
    /// The compact MNIST file of `cargo xtask data`
    #[arg(long)]
    mnist: PathBuf,
    /// Worker threads
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The page to write
    #[arg(long)]
    out: PathBuf,
}

/// One style's translators.
struct Style {
    name: String,
    regulated: PathBuf,
    unregulated: Option<PathBuf>,
}

fn parse_style(spec: &str) -> Result<Style> {
    let Some((name, cards)) = spec.split_once('=') else {
        bail!("--style {spec}: expected NAME=REGULATED.toml[:UNREGULATED.toml]");
    };
    let mut parts = cards.splitn(2, ':');
    let regulated = PathBuf::from(parts.next().unwrap_or_default());
    let unregulated = parts.next().map(PathBuf::from);
    Ok(Style { name: name.to_string(), regulated, unregulated })
}

/// Identity, change and judged accuracy of one translator over the judge digits.
struct Images01 {
    identity_mean: f64,
    identity_max: f64,
    change_at_one: f64,
    accuracy_plain: f64,
    accuracy_translated: f64,
}

fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

fn judge_translator(net: &Network, judge: &Network, digits: &Images) -> Result<Images01> {
    let rows = (0..digits.len())
        .into_par_iter()
        .map(|i| {
            let x = digits.image(i);
            let t = Translator::new(net.clone(), x.to_vec())?;
            let out = t.images(&[0.0, 1.0])?;
            let n = x.len();
            let (at0, at1) = out.split_at(n);
            let id = at0.iter().zip(x).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64;
            let ch = at1.iter().zip(x).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64;
            let l = digits.labels[i];
            let plain = argmax(&judge.forward(x, 1)?) == l;
            let styled = argmax(&judge.forward(at1, 1)?) == l;
            Ok((id, ch, plain, styled))
        })
        .collect::<Result<Vec<_>>>()?;
    let n = rows.len() as f64;
    Ok(Images01 {
        identity_mean: rows.iter().map(|r| r.0).sum::<f64>() / n,
        identity_max: rows.iter().map(|r| r.0).fold(0.0, f64::max),
        change_at_one: rows.iter().map(|r| r.1).sum::<f64>() / n,
        accuracy_plain: rows.iter().filter(|r| r.2).count() as f64 / n,
        accuracy_translated: rows.iter().filter(|r| r.3).count() as f64 / n,
    })
}

/// Continuity in α at each digit: evenness and straightness of `α ↦ T(x, α)` on [0, 1] (as `gcert continuity`
/// measures latent segments), and the exact chain's pieces.
struct Continuity {
    evenness: Vec<f64>,
    straightness: Vec<f64>,
    pieces: Vec<usize>,
}

fn continuity(net: &Network, digits: &Images) -> Result<Continuity> {
    let gammas: Vec<f64> = (1..20).map(|j| j as f64 / 20.0).collect();
    let rows = (0..digits.len())
        .into_par_iter()
        .map(|i| {
            let t = Translator::new(net.clone(), digits.image(i).to_vec())?;
            let mut alphas = vec![0.0, 1.0];
            alphas.extend(&gammas);
            let out = t.images(&alphas)?;
            let n = t.image_shape().iter().product::<usize>();
            let imgs: Vec<&[f64]> = out.chunks_exact(n).collect();
            let s = gcert_continuity::segment_stats(&[0.0], &[1.0], imgs[0], imgs[1], &gammas, &imgs[2..]);
            let pieces = pixel_bounds(t.layers(), &[t.segment(1.0)?])?.pieces;
            Ok((s.evenness, s.straightness, pieces))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Continuity {
        evenness: rows.iter().filter_map(|r| r.0).collect(),
        straightness: rows.iter().filter_map(|r| r.1).collect(),
        pieces: rows.iter().map(|r| r.2).collect(),
    })
}

/// Table 7's row for one classifier and style: per digit, the largest tolerance and the time.
fn certify(
    net: &Network,
    classifier: &Network,
    style: &str,
    digits: &Images,
) -> Result<Vec<(f64, f64, usize)>> {
    (0..digits.len())
        .into_par_iter()
        .map(|i| {
            let t = Translator::new(net.clone(), digits.image(i).to_vec())?;
            let models = Models::with_translator(t, classifier.clone(), None, None)?;
            let job = Job {
                segment: JobSegment::strength(1.0, style)?,
                two_sided: false,
                label: Some(digits.labels[i]),
                method: Method::Complete,
            };
            let start = Instant::now();
            let cert = models.certify(&job, Options::default())?;
            Ok((cert.max_tolerance, start.elapsed().as_secs_f64() * 1e3, cert.pieces))
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// The training report beside a card (`<stem>.json`, written by `gcert train style`): seconds and the filter's
/// own judged accuracy, when present.
fn training_report(card: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(card.with_extension("json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn main() -> Result<()> {
    let s = <Settings as clap::Parser>::parse();
    rayon::ThreadPoolBuilder::new().num_threads(s.threads.max(1)).build_global()?;
    let styles = s.styles.iter().map(|x| parse_style(x)).collect::<Result<Vec<_>>>()?;
    let classifiers: Vec<PathBuf> = if s.classifiers.is_empty() {
        ["fc3", "conv2", "conv4", "conv4-aug"]
            .iter()
            .map(|c| PathBuf::from(format!("fixtures/trained/classifier-{c}.toml")))
            .collect()
    } else {
        s.classifiers.clone()
    };
    let load = |p: &Path| Network::load(p).with_context(|| format!("loading {}", p.display()));
    let judge = load(&s.judge)?;
    let digits = Images::mnist_test(&s.mnist, s.digits)?;
    let judge_digits = Images::mnist_test(&s.mnist, s.judge_digits)?;
    let started = Instant::now();
    let mut page = String::new();
    writeln!(page, "# Stylized mutations: measurements\n")?;
    writeln!(
        page,
        "Written by `cargo xtask styles` (the example `crates/gcert-cli/examples/style_tables.rs`); \
         docs/stylized.md explains the translators, the certification along α and how to read these tables. \
         Digits: the first {} (Table 7, continuity) and {} (identity, accuracy) of the fixed MNIST test split.\n",
        s.digits, s.judge_digits
    )?;

    // Translators: identity, accuracy, training.
    writeln!(page, "## The translators\n")?;
    writeln!(
        page,
        "Identity is the mean per-pixel `|T(x, 0) − x|` (grey levels in [0, 1]); *change at α = 1* the same \
         distance to `T(x, 1)`. Accuracy is `{}` on the true labels.\n",
        s.judge.display()
    )?;
    writeln!(
        page,
        "| style | card | training | identity at α = 0, mean / worst digit | change at α = 1 | accuracy on x | on T(x, 1) | on the real filter |"
    )?;
    writeln!(page, "|---|---|---|---|---|---|---|---|")?;
    let mut nets = Vec::new();
    for st in &styles {
        let mut cards = vec![(st.regulated.clone(), "regulated")];
        cards.extend(st.unregulated.clone().map(|u| (u, "unregulated")));
        let mut loaded = Vec::new();
        for (card, kind) in cards {
            let net = load(&card)?;
            gcert_core::translator::translator_inputs(&net)?;
            let m = judge_translator(&net, &judge, &judge_digits)?;
            let report = training_report(&card);
            let seconds = report
                .as_ref()
                .and_then(|r| r["training"]["seconds"].as_f64())
                .map_or("?".into(), |x| format!("{x:.0} s"));
            let filtered = report
                .as_ref()
                .and_then(|r| r["metrics"]["accuracy_filtered"].as_f64())
                .map_or("?".into(), |x| format!("{x:.3}"));
            writeln!(
                page,
                "| {} ({kind}) | `{}` | {seconds} | {:.4} / {:.4} | {:.3} | {:.3} | {:.3} | {filtered} |",
                st.name,
                card.display(),
                m.identity_mean,
                m.identity_max,
                m.change_at_one,
                m.accuracy_plain,
                m.accuracy_translated
            )?;
            eprintln!(
                "{} {kind}: identity {:.4}, accuracy at α = 1 {:.3}",
                st.name, m.identity_mean, m.accuracy_translated
            );
            loaded.push((kind, net));
        }
        nets.push(loaded);
    }

    // Continuity in α.
    writeln!(page, "\n## Continuity in α, with and without the term\n")?;
    writeln!(
        page,
        "Per digit, along α ∈ [0, 1]: *evenness* is the largest `|‖T(x, γ) − T(x, 0)‖ / ‖T(x, 1) − T(x, 0)‖ − γ|` \
         over γ = 0.05, 0.10, …, 0.95 (0: evenly paced), *straightness* the largest distance of `T(x, γ)` from \
         the straight path relative to its length (0: straight), and *pieces* the exact chain's affine pieces \
         of the translator alone (fewer: cheaper certification). Medians over the digits, means in brackets.\n"
    )?;
    writeln!(page, "| style | translator | evenness | straightness | pieces per segment |")?;
    writeln!(page, "|---|---|---|---|---|")?;
    for (st, loaded) in styles.iter().zip(&nets) {
        for (kind, net) in loaded {
            let c = continuity(net, &digits)?;
            let pieces: Vec<f64> = c.pieces.iter().map(|&p| p as f64).collect();
            writeln!(
                page,
                "| {} | {kind} | {:.3} ({:.3}) | {:.3} ({:.3}) | {:.0} ({:.0}) |",
                st.name,
                median(&c.evenness),
                mean(&c.evenness),
                median(&c.straightness),
                mean(&c.straightness),
                median(&pieces),
                mean(&pieces)
            )?;
            eprintln!(
                "{} {kind}: evenness {:.3}, pieces {:.0}",
                st.name,
                median(&c.evenness),
                median(&pieces)
            );
        }
    }

    // Table 7.
    writeln!(page, "\n## Table 7: certified along the style's strength\n")?;
    writeln!(
        page,
        "For each classifier and style (the regulated translator), the fraction of the {} digits whose label is \
         kept for every α ∈ [0, E] (complete certification; a digit misclassified at α = 0 counts as not \
         certified), the mean largest tolerance `E_max` on [0, 1] (in units of α), and the median time of one \
         certification on one thread.\n",
        s.digits
    )?;
    writeln!(
        page,
        "| classifier | style | α = 0.2 | α = 0.5 | α = 0.8 | mean E_max | median pieces | median time |"
    )?;
    writeln!(page, "|---|---|---|---|---|---|---|---|")?;
    for card in &classifiers {
        let classifier = load(card)?;
        let name = card.file_stem().and_then(|x| x.to_str()).unwrap_or("?").trim_start_matches("classifier-");
        for (st, loaded) in styles.iter().zip(&nets) {
            let net = &loaded[0].1;
            let rows = certify(net, &classifier, &st.name, &digits)?;
            let n = rows.len() as f64;
            let at = |a: f64| rows.iter().filter(|r| r.0 >= a).count() as f64 / n;
            let tol: Vec<f64> = rows.iter().map(|r| r.0).collect();
            let ms: Vec<f64> = rows.iter().map(|r| r.1).collect();
            let pieces: Vec<f64> = rows.iter().map(|r| r.2 as f64).collect();
            writeln!(
                page,
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} ms |",
                st.name,
                at(0.2),
                at(0.5),
                at(0.8),
                mean(&tol),
                median(&pieces),
                median(&ms)
            )?;
            eprintln!("{name} {}: {:.2} {:.2} {:.2}", st.name, at(0.2), at(0.5), at(0.8));
        }
    }
    writeln!(
        page,
        "\nRun time: {:.1} min on {} threads.",
        started.elapsed().as_secs_f64() / 60.0,
        s.threads
    )?;
    gcert_core::io::write_atomic(&s.out, true, |w| w.write_all(page.as_bytes()))
        .with_context(|| format!("writing {}", s.out.display()))?;
    eprintln!("wrote {}", s.out.display());
    Ok(())
}
