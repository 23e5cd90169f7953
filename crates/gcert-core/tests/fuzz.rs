//! A mutation fuzzer for the loaders (issue 15): model cards with their safetensors weights, and `.npy` arrays.
//!
//! Seeds are the committed corpus in `fixtures/fuzz/` (valid and invalid cards, weights and arrays; the
//! valid part is rewritten by the ignored test `regenerate_fuzz_corpus`). Each execution mutates one seed —
//! bytes flipped, set to boundary values, inserted, deleted or spliced from another seed, and numbers in the
//! card or in the safetensors header replaced by boundary values such as 0, 2⁶³ − 1, −1, 1e308 or NaN — then
//! runs it through the loader exactly as `Network::load` and `read_npy` do after reading the file: the TOML
//! parse, the safetensors decode, the card's resolution under the budget, and a forward pass of every network
//! that loads. Any panic (an overflow in a debug build, an index out of bounds, an allocation failure) is a
//! crash: the input is written to `target/fuzz-crashes/` and the test fails. A result that is an error is
//! fine; so is a network that loads, whose forward pass must then give finite values or an error.
//!
//! `cargo test -p gcert-core --test fuzz` runs a bounded number of executions (under a second here, at most
//! eight); `GCERT_FUZZ_EXECS=1000000 cargo test -p gcert-core --test fuzz -- --ignored fuzz_loaders_long
//! --nocapture` runs a long campaign and prints its figures. Run it in the test profile (not `--release`): the
//! workspace's test profile is optimised (`opt-level = 2`) and keeps overflow checks, so a size computation
//! that wraps is a panic, hence a crash, instead of a silently wrong number.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gcert_core::limits::Limits;
use gcert_core::loader::parse_card;
use gcert_core::npy::decode_npy;
use gcert_core::tensors::decode_safetensors;
use gcert_core::Network;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/fuzz")
}

/// A card with its weights (either may be invalid).
#[derive(Clone)]
struct ModelSeed {
    card: Vec<u8>,
    weights: Vec<u8>,
}

struct Corpus {
    models: Vec<ModelSeed>,
    arrays: Vec<Vec<u8>>,
}

fn load_corpus() -> Corpus {
    let dir = corpus_dir();
    let mut models = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("models"))
        .expect("fixtures/fuzz/models exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    for card in names {
        let weights = card.with_extension("safetensors");
        models.push(ModelSeed {
            card: std::fs::read(&card).unwrap(),
            weights: std::fs::read(&weights).unwrap_or_default(),
        });
    }
    let mut arrays: Vec<PathBuf> =
        std::fs::read_dir(dir.join("npy")).unwrap().map(|e| e.unwrap().path()).collect();
    arrays.sort();
    let arrays = arrays.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let corpus = Corpus { models, arrays };
    assert!(corpus.models.len() >= 8 && corpus.arrays.len() >= 6, "the fuzz corpus is missing");
    corpus
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "255",
    "65536",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "3689348814741910324",
    "1e308",
    "-1e308",
    "5e-324",
    "nan",
    "inf",
    "-inf",
    "[]",
    "[0, 0]",
    "[1, 9223372036854775807]",
    "\"\"",
];

/// Replaces one number (a run of digits, with sign, point and exponent) in the text with a boundary value.
fn mutate_number(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let s = starts[rng.gen_range(0..starts.len())];
    let mut e = s;
    while e < bytes.len() && (bytes[e].is_ascii_digit() || b".eE-+".contains(&bytes[e])) {
        e += 1;
    }
    let with = NUMBERS[rng.gen_range(0..NUMBERS.len())];
    bytes.splice(s..e, with.bytes());
}

/// One random byte-level or token-level mutation; `other` is a second seed for splicing.
fn mutate(bytes: &mut Vec<u8>, other: &[u8], rng: &mut ChaCha8Rng) {
    let len = bytes.len();
    match rng.gen_range(0..9) {
        0 | 1 => mutate_number(bytes, rng),
        2 if len > 0 => {
            let i = rng.gen_range(0..len);
            bytes[i] ^= 1 << rng.gen_range(0..8);
        }
        3 if len > 0 => {
            let i = rng.gen_range(0..len);
            bytes[i] = [0u8, 0xff, 0x7f, 0x80, b'9', b'"', b'\n', b'[', b'{'][rng.gen_range(0..9)];
        }
        4 if len > 0 => {
            let i = rng.gen_range(0..len);
            let n = rng.gen_range(1..=(len - i).min(64));
            bytes.drain(i..i + n);
        }
        5 => {
            let i = rng.gen_range(0..=len);
            let n = rng.gen_range(1..=16);
            let fill: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            bytes.splice(i..i, fill);
        }
        6 if !other.is_empty() => {
            let a = rng.gen_range(0..other.len());
            let b = rng.gen_range(a..=other.len().min(a + 128));
            let i = rng.gen_range(0..=len);
            bytes.splice(i..i, other[a..b].iter().copied());
        }
        7 if len > 0 => bytes.truncate(rng.gen_range(0..len)),
        _ => {
            // Duplicate a line (a card's layer field, a header entry).
            if let Some(i) = (0..len).filter(|&i| bytes[i] == b'\n').nth(rng.gen_range(0..4)) {
                let start = bytes[..i].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                let line = bytes[start..=i].to_vec();
                bytes.splice(i + 1..i + 1, line);
            }
        }
    }
}

/// The loader on one card and weights, as `Network::load_with` runs it after reading the files, then a
/// forward pass of two samples if the network loads.
/// Returns whether the network loaded.
fn run_model(card: &[u8], weights: &[u8], limits: &Limits) -> bool {
    let origin = Path::new("fuzz.toml");
    let Ok(text) = std::str::from_utf8(card) else { return false };
    let Ok(card) = parse_card(text, origin) else { return false };
    let Ok(tensors) = decode_safetensors(weights, Path::new("fuzz.safetensors"), limits) else {
        return false;
    };
    let Ok(net) = Network::from_card_with(&card, &tensors, origin, limits) else { return false };
    let n = net.input_len();
    let input: Vec<f64> = (0..2 * n).map(|i| ((i * 7919) % 13) as f64 / 6.0 - 1.0).collect();
    if let Ok(out) = net.forward(&input, 2) {
        assert_eq!(out.len(), 2 * net.output_len());
        assert!(out.iter().all(|v| v.is_finite()), "a forward pass returned a non-finite value");
    }
    true
}

/// Returns whether the array decoded.
fn run_npy(bytes: &[u8], limits: &Limits) -> bool {
    match decode_npy(bytes, Path::new("fuzz.npy"), limits) {
        Ok(a) => {
            assert_eq!(a.data.len(), a.shape.iter().product::<usize>());
            assert!(a.data.iter().all(|v| v.is_finite()));
            true
        }
        Err(_) => false,
    }
}

/// What a campaign ran.
#[derive(Debug, Default)]
struct Stats {
    execs: u64,
    models: u64,
    models_loaded: u64,
    arrays: u64,
    arrays_decoded: u64,
}

/// Runs up to `execs` executions or until `time` has passed. Panics on a crash, after writing the input that
/// caused it.
fn campaign(execs: u64, time: Duration, seed: u64) -> Stats {
    let corpus = load_corpus();
    // A small budget keeps each forward pass cheap; the checks are the same at any budget.
    let limits = Limits::default().with_max_elements(1 << 12);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut stats = Stats::default();
    let mut crash = None;
    while stats.execs < execs && start.elapsed() < time {
        stats.execs += 1;
        if rng.gen_bool(0.6) {
            let i = rng.gen_range(0..corpus.models.len());
            let j = rng.gen_range(0..corpus.models.len());
            let mut m = corpus.models[i].clone();
            for _ in 0..rng.gen_range(1..=3) {
                match rng.gen_range(0..3) {
                    0 => mutate(&mut m.card, &corpus.models[j].card, &mut rng),
                    1 => mutate(&mut m.weights, &corpus.models[j].weights, &mut rng),
                    _ => {
                        // The safetensors header is JSON text after an 8-byte length: mutate its numbers.
                        if m.weights.len() > 8 {
                            let mut body = m.weights.split_off(8);
                            mutate_number(&mut body, &mut rng);
                            m.weights.extend(body);
                        }
                    }
                }
            }
            stats.models += 1;
            match catch_unwind(AssertUnwindSafe(|| run_model(&m.card, &m.weights, &limits))) {
                Ok(loaded) => stats.models_loaded += u64::from(loaded),
                Err(_) => {
                    crash = Some(("model", m.card.clone(), m.weights.clone()));
                    break;
                }
            }
        } else {
            let i = rng.gen_range(0..corpus.arrays.len());
            let j = rng.gen_range(0..corpus.arrays.len());
            let mut a = corpus.arrays[i].clone();
            for _ in 0..rng.gen_range(1..=3) {
                mutate(&mut a, &corpus.arrays[j], &mut rng);
            }
            stats.arrays += 1;
            match catch_unwind(AssertUnwindSafe(|| run_npy(&a, &limits))) {
                Ok(decoded) => stats.arrays_decoded += u64::from(decoded),
                Err(_) => {
                    crash = Some(("npy", a, Vec::new()));
                    break;
                }
            }
        }
    }
    std::panic::set_hook(default_hook);
    if let Some((kind, a, b)) = crash {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
        std::fs::create_dir_all(&dir).unwrap();
        let done = stats.execs;
        std::fs::write(dir.join(format!("{kind}-{done}.a")), &a).unwrap();
        std::fs::write(dir.join(format!("{kind}-{done}.b")), &b).unwrap();
        // Re-run with the default hook to show the panic.
        match kind {
            "model" => run_model(&a, &b, &limits),
            _ => run_npy(&a, &limits),
        };
        panic!("fuzz crash after {done} executions; input saved in {}", dir.display());
    }
    stats
}

/// The bounded run of the normal test suite: a few thousand executions, at most a few seconds.
#[test]
fn fuzz_loaders() {
    let s = campaign(20_000, Duration::from_secs(8), 15);
    assert!(s.execs >= 1_000, "only {} executions ran", s.execs);
    // The mutations must not only produce garbage: some mutants still load and run, some arrays decode.
    assert!(s.models_loaded * 100 >= s.models, "{s:?}");
    assert!(s.arrays_decoded * 50 >= s.arrays, "{s:?}");
}

/// Every committed seed loads (valid ones) or fails with an error (invalid ones), never a panic.
#[test]
fn corpus_seeds_behave_as_named() {
    let corpus_dir = corpus_dir().join("models");
    let limits = Limits::default().with_max_elements(1 << 12);
    let mut valid = 0;
    for e in std::fs::read_dir(&corpus_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let card = std::fs::read_to_string(&p).unwrap();
        let weights = std::fs::read(p.with_extension("safetensors")).unwrap_or_default();
        let loaded = parse_card(&card, &p).and_then(|c| {
            let t = decode_safetensors(&weights, &p, &limits)?;
            Network::from_card_with(&c, &t, &p, &limits)
        });
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(loaded.is_ok(), name.starts_with("ok-"), "{name}: {:?}", loaded.err());
        valid += usize::from(loaded.is_ok());
    }
    assert!(valid >= 6);
}

/// The long campaign: `GCERT_FUZZ_EXECS` executions (default 10⁶), `GCERT_FUZZ_SEED` (default 1).
#[test]
#[ignore = "long: run with --ignored"]
fn fuzz_loaders_long() {
    let execs = std::env::var("GCERT_FUZZ_EXECS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let seed = std::env::var("GCERT_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let start = Instant::now();
    let s = campaign(execs, Duration::from_secs(u64::MAX / 4), seed);
    println!(
        "fuzz: {} executions (seed {seed}) in {:.1} s, no crash: {} card+weights mutants of which {} loaded and \
         ran, {} .npy mutants of which {} decoded",
        s.execs,
        start.elapsed().as_secs_f64(),
        s.models,
        s.models_loaded,
        s.arrays,
        s.arrays_decoded
    );
    assert_eq!(s.execs, execs);
}

/// Rewrites the valid seeds of the corpus from `CardBuilder` (the invalid ones are hand-written).
#[test]
#[ignore = "rewrites fixtures/fuzz"]
fn regenerate_fuzz_corpus() {
    use gcert_core::builder::CardBuilder;
    use gcert_core::network::save_card;
    use gcert_core::npy::write_npy;
    use gcert_core::tensors::Precision;
    let dir = corpus_dir();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::create_dir_all(dir.join("npy")).unwrap();
    let models = [
        CardBuilder::new("ok-mlp", &[4], 1).linear(6).relu().linear(3),
        CardBuilder::new("ok-conv", &[1, 6, 6], 2)
            .conv2d(2, 3, 1, 1)
            .relu()
            .max_pool2d(2, 2, 0)
            .flatten()
            .linear(2),
        CardBuilder::new("ok-gen", &[3], 3)
            .reshape(&[3, 1, 1])
            .conv_transpose2d(2, 3, 2, 0, 0)
            .batch_norm()
            .leaky_relu(0.1)
            .conv_transpose2d(1, 2, 2, 1, 1)
            .clamp(0.0, 1.0),
        CardBuilder::new("ok-pool", &[2, 5, 5], 4)
            .avg_pool2d(3, 2, 1)
            .conv2d(1, 2, 1, 0)
            .tanh()
            .flatten()
            .linear(1)
            .sigmoid(),
        CardBuilder::new("ok-bn", &[4], 5).linear(4).batch_norm().relu().linear(2),
        CardBuilder::new("ok-stride", &[1, 7, 7], 6)
            .conv2d(2, 3, 3, 2)
            .max_pool2d(3, 1, 1)
            .flatten()
            .linear(2),
    ];
    for b in models {
        let (card, tensors) = b.build();
        let path = dir.join("models").join(format!("{}.toml", card.name));
        save_card(&path, &card, &tensors, Precision::F32, true).unwrap();
    }
    write_npy(&dir.join("npy/ok-vector.npy"), &[4], &[0.5, -1.0, 2.0, 0.0]).unwrap();
    write_npy(&dir.join("npy/ok-image.npy"), &[1, 2, 3], &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
    write_npy(&dir.join("npy/ok-scalar.npy"), &[], &[1.0]).unwrap();
    write_npy(&dir.join("npy/ok-empty.npy"), &[0, 3], &[]).unwrap();
}
