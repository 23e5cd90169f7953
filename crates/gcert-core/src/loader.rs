//! Loading a model card from disk under the input limits: the card's text (bounded, regular file), its TOML
//! parse with one-line errors that name the line and column, and the weights file, which must lie inside the
//! card's folder unless the caller allows otherwise (`--allow-outside-weights`).

use std::path::{Component, Path, PathBuf};

use crate::card::ModelCard;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::network::Network;
use crate::tensors::read_safetensors_with;

/// How [`Network::load_with`] treats a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    pub limits: Limits,
    /// Read a `weights` path that leaves the card's folder (absolute, `..` above the folder, or a symbolic
    /// link out of it). Off by default: a card from an untrusted place must not probe other files.
    pub allow_outside_weights: bool,
}

impl LoadOptions {
    /// The options with this process's current limits ([`Limits::current`]).
    pub fn current() -> Self {
        LoadOptions { limits: Limits::current(), allow_outside_weights: false }
    }
}

/// Parses a card's TOML text; a syntax or schema error is one line: the reason, then its line and column.
pub fn parse_card(text: &str, path: &Path) -> Result<ModelCard> {
    let card: ModelCard = toml::from_str(text).map_err(|e| {
        let place = e.span().map(|s| line_column(text, s.start));
        let reason = e.message().trim().replace('\n', "; ");
        let message = match place {
            Some((line, column)) => format!("malformed model card: {reason} (line {line}, column {column})"),
            None => format!("malformed model card: {reason}"),
        };
        Error::card(path, message)
    })?;
    reject_fields_of_fieldless_ops(text, path)?;
    Ok(card)
}

/// serde ignores extra keys on the ops without fields (`relu`, `flatten`, `sigmoid`, `tanh`) even under
/// `deny_unknown_fields`; a misspelt or misplaced field there (`slope` on a `relu`) is an error like anywhere
/// else in the card.
fn reject_fields_of_fieldless_ops(text: &str, path: &Path) -> Result<()> {
    let Ok(value) = text.parse::<toml::Table>() else { return Ok(()) };
    let Some(layers) = value.get("layers").and_then(|l| l.as_array()) else { return Ok(()) };
    for (index, layer) in layers.iter().enumerate() {
        let Some(table) = layer.as_table() else { continue };
        let Some(op) = table.get("op").and_then(|o| o.as_str()) else { continue };
        if !matches!(op, "relu" | "flatten" | "sigmoid" | "tanh") {
            continue;
        }
        if let Some(key) = table.keys().find(|k| k.as_str() != "op") {
            return Err(Error::card(
                path,
                format!("malformed model card: unknown field `{key}` in layer {index} ({op}), which takes no fields"),
            ));
        }
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where the weights of the card at `card_path` are, checked to stay inside the card's folder unless
/// `allow_outside`. The lexical check runs before the file system is touched, so an escaping path is never
/// probed; a symbolic link out of the folder is caught after resolving it.
pub fn weights_path(card_path: &Path, weights: &str, allow_outside: bool) -> Result<PathBuf> {
    let base = card_path.parent().unwrap_or(Path::new("."));
    let joined = base.join(weights);
    let dir = if base.as_os_str().is_empty() { Path::new(".") } else { base };
    if allow_outside {
        return Ok(joined);
    }
    let refuse = |why: &str| {
        Error::card(
            card_path,
            format!(
                "the weights file '{weights}' {why}; a card may only name weights inside its own folder (pass \
                 --allow-outside-weights to read it anyway)"
            ),
        )
    };
    let mut depth = 0usize;
    for c in Path::new(weights).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or_else(|| refuse("leaves the card's folder"))?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(refuse("is an absolute path")),
        }
    }
    if weights.is_empty() || depth == 0 {
        return Err(refuse("does not name a file"));
    }
    if let (Ok(d), Ok(w)) = (dir.canonicalize(), joined.canonicalize()) {
        if !w.starts_with(&d) {
            return Err(refuse("is a link that leads out of the card's folder"));
        }
    }
    Ok(joined)
}

impl Network {
    /// Loads and validates a model card and the weights it names under explicit options.
    pub fn load_with(card_path: impl AsRef<Path>, options: &LoadOptions) -> Result<Network> {
        let card_path = card_path.as_ref();
        let text = crate::io::read_text_capped(card_path, "a model card", options.limits.max_card_bytes)?;
        let card = parse_card(&text, card_path)?;
        let weights = weights_path(card_path, &card.weights, options.allow_outside_weights)?;
        if !weights.exists() {
            return Err(Error::card(card_path, format!("weights file {} does not exist", weights.display())));
        }
        let tensors = read_safetensors_with(&weights, &options.limits)?;
        Network::from_card_with(&card, &tensors, card_path, &options.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_are_one_line_with_line_and_column() {
        let text = "format = \"gcert-model/1\"\nname = [\n";
        let e = parse_card(text, Path::new("dir/m.toml")).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("dir/m.toml: malformed model card: "), "{e}");
        assert!(e.contains("(line 2, column") || e.contains("(line 3, column"), "{e}");
        let text =
            "format = \"gcert-model/1\"\nname = \"x\"\nweights = \"w\"\ninput_shape = [2]\nbogus = 1\n";
        let e = parse_card(text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("unknown field `bogus`") && e.contains("(line 5, column 1)"), "{e}");
        assert_eq!(line_column("ab\ncé\nx", 6), (2, 3));
        let text = "format = \"gcert-model/1\"\nname = \"x\"\nweights = \"w\"\ninput_shape = [2]\n[[layers]]\nop = \"relu\"\nslope = 0.2\n";
        let e = parse_card(text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("unknown field `slope` in layer 0 (relu)"), "{e}");
    }

    #[test]
    fn weights_must_stay_in_the_cards_folder() {
        let dir = tempfile::tempdir().unwrap();
        let card = dir.path().join("sub").join("m.toml");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(
            weights_path(&card, "w.safetensors", false).unwrap(),
            dir.path().join("sub/w.safetensors")
        );
        assert!(weights_path(&card, "a/../w.safetensors", false).is_ok());
        for (bad, why) in [
            ("../w.safetensors", "leaves the card's folder"),
            ("a/../../w.safetensors", "leaves the card's folder"),
            ("/etc/passwd", "is an absolute path"),
            ("", "does not name a file"),
            (".", "does not name a file"),
        ] {
            let e = weights_path(&card, bad, false).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("--allow-outside-weights"), "{bad}: {e}");
        }
        assert_eq!(weights_path(&card, "/etc/passwd", true).unwrap(), PathBuf::from("/etc/passwd"));
        #[cfg(unix)]
        {
            std::fs::write(dir.path().join("outside.safetensors"), b"x").unwrap();
            std::os::unix::fs::symlink(
                dir.path().join("outside.safetensors"),
                dir.path().join("sub/l.safetensors"),
            )
            .unwrap();
            let e = weights_path(&card, "l.safetensors", false).unwrap_err().to_string();
            assert!(e.contains("a link that leads out"), "{e}");
        }
        // A card given with a bare file name lives in the current folder.
        assert_eq!(
            weights_path(Path::new("m.toml"), "w.safetensors", false).unwrap(),
            Path::new("w.safetensors")
        );
    }
}
