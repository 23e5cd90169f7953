//! Style translators `T(x, α)` (docs/stylized.md): a network with two inputs, an image and one scalar strength
//! `α`, whose output is an image of the same shape. A stylized mutation holds the image fixed and moves `α`
//! along `[0, E]`, so the translator with its image embedded is a one-input network of `α`, and every certifier
//! and the exact chain take it as a generator whose latent is `α`.

use crate::chain::Segment;
use crate::error::{Error, Result};
use crate::network::{check_finite, forward_layers};
use crate::ops::Layer;
use crate::Network;

/// A translator network with one image held fixed: the generator `α ↦ T(x, α)`.
#[derive(Debug)]
pub struct Translator {
    network: Network,
    embed: Layer,
    image_shape: Vec<usize>,
    strength_input: usize,
}

/// Which inputs of a translator card are the image and the strength.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatorInputs {
    /// Index of the image input.
    pub image: usize,
    /// Index of the scalar strength input.
    pub strength: usize,
    /// The image's shape (also the output's).
    pub image_shape: Vec<usize>,
}

/// Checks that `network` is a translator: exactly two inputs, exactly one of them a scalar strength (`[1]`),
/// and an output of the image input's shape. The error names the card and what is wrong.
pub fn translator_inputs(network: &Network) -> Result<TranslatorInputs> {
    let shapes = network.input_shapes();
    let bad = |what: String| Error::card(network.path(), format!("not a style translator: {what}"));
    let scalars: Vec<usize> = (0..shapes.len()).filter(|&i| shapes[i].as_slice() == [1]).collect();
    if shapes.len() != 2 || scalars.len() != 1 {
        return Err(bad(format!(
            "a translator has exactly two inputs, an image and one scalar strength α of shape [1]; this card \
             has inputs {shapes:?}"
        )));
    }
    let strength = scalars[0];
    let image = 1 - strength;
    let image_shape = shapes[image].clone();
    if network.output_shape() != image_shape.as_slice() {
        return Err(bad(format!(
            "its output has shape {:?}, but a translator returns an image of its input's shape {image_shape:?}",
            network.output_shape()
        )));
    }
    Ok(TranslatorInputs { image, strength, image_shape })
}

impl Translator {
    /// Holds `image` (the image input's values, flat) fixed in `network`. Errors: the card is not a
    /// translator, or the image has the wrong number of values or a non-finite one.
    pub fn new(network: Network, image: Vec<f64>) -> Result<Translator> {
        let inputs = translator_inputs(&network)?;
        let need: usize = inputs.image_shape.iter().product();
        if image.len() != need {
            return Err(Error::input(format!(
                "the image has {} values, the translator {} takes {:?} ({need} values)",
                image.len(),
                network.path().display(),
                inputs.image_shape
            )));
        }
        check_finite("the image", &image)?;
        let (prefix, suffix) = if inputs.strength == 0 { (Vec::new(), image) } else { (image, Vec::new()) };
        let embed = Layer::embed(prefix, 1, suffix)?;
        Ok(Translator { network, embed, image_shape: inputs.image_shape, strength_input: inputs.strength })
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The shape of the image (input and output).
    pub fn image_shape(&self) -> &[usize] {
        &self.image_shape
    }

    /// Which input of the card is the strength.
    pub fn strength_input(&self) -> usize {
        self.strength_input
    }

    /// The layers of `α ↦ T(x, α)`: the embedding of `α` among the fixed image, then the card's layers.
    pub fn layers(&self) -> Vec<&Layer> {
        std::iter::once(&self.embed).chain(self.network.layers()).collect()
    }

    /// The segment `α ∈ [0, strength]` of the one-dimensional input.
    pub fn segment(&self, strength: f64) -> Result<Segment> {
        if !(strength.is_finite() && strength > 0.0) {
            return Err(Error::input(format!("the strength must be positive and finite, found {strength}")));
        }
        Segment::new(vec![0.0], vec![strength])
    }

    /// `T(x, α)` for each `α` of `alphas`, one image after the other.
    pub fn images(&self, alphas: &[f64]) -> Result<Vec<f64>> {
        forward_layers(self.layers(), 1, alphas, alphas.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::ModelCard;
    use crate::tensors::{Tensor, TensorStore};
    use std::path::Path;

    fn card(shapes: &str, out: usize) -> (ModelCard, TensorStore) {
        let card: ModelCard = toml::from_str(&format!(
            "format = \"gcert-model/1\"\nname = \"t\"\nweights = \"t.safetensors\"\ninput_shapes = {shapes}\n\
             [[layers]]\nop = \"concat\"\n[[layers]]\nop = \"flatten\"\n[[layers]]\nop = \"linear\"\nweight = \"w\"\n\
             [[layers]]\nop = \"reshape\"\nshape = [{out}, 2, 2]\n"
        ))
        .unwrap();
        let mut t = TensorStore::new();
        // y = x + α on each pixel: columns are the 4 image values, then the 4 broadcast α values.
        let mut w = vec![0.0; 4 * out * 8];
        for i in 0..4 * out {
            w[i * 8 + i % 4] = 1.0;
            w[i * 8 + 4 + i % 4] = 1.0;
        }
        t.insert("w".into(), Tensor::new(vec![4 * out, 8], w));
        (card, t)
    }

    #[test]
    fn a_translator_moves_only_its_strength() {
        let (c, t) = card("[[1, 2, 2], [1]]", 1);
        let net = Network::from_card(&c, &t, Path::new("t.toml")).unwrap();
        let tr = Translator::new(net, vec![0.1, 0.2, 0.3, 0.4]).unwrap();
        assert_eq!((tr.image_shape(), tr.strength_input()), (&[1usize, 2, 2][..], 1));
        let out = tr.images(&[0.0, 0.5]).unwrap();
        let want = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9];
        assert!(out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{out:?}");
        assert_eq!(tr.segment(0.5).unwrap().b(), &[0.5]);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(tr.segment(bad).unwrap_err().to_string().contains("positive and finite"));
        }
        // The strength may come first.
        let (c, t) = card("[[1], [1, 2, 2]]", 1);
        let net = Network::from_card(&c, &t, Path::new("t.toml")).unwrap();
        assert_eq!(Translator::new(net, vec![0.0; 4]).unwrap().strength_input(), 0);
    }

    #[test]
    fn what_is_not_a_translator_is_refused_naming_the_card() {
        let (c, t) = card("[[1, 2, 2], [1]]", 2);
        let net = Network::from_card(&c, &t, Path::new("wide.toml")).unwrap();
        let e = Translator::new(net, vec![0.0; 4]).unwrap_err().to_string();
        assert!(e.contains("wide.toml") && e.contains("returns an image of its input's shape"), "{e}");
        let (c, t) = card("[[1, 2, 2], [1]]", 1);
        let net = Network::from_card(&c, &t, Path::new("t.toml")).unwrap();
        let e = Translator::new(net, vec![0.0; 3]).unwrap_err().to_string();
        assert!(e.contains("the image has 3 values"), "{e}");
        let net = Network::from_card(&c, &t, Path::new("t.toml")).unwrap();
        let e = Translator::new(net, vec![0.0, f64::NAN, 0.0, 0.0]).unwrap_err().to_string();
        assert!(e.contains("non-finite"), "{e}");
        let one: ModelCard = toml::from_str(
            "format = \"gcert-model/1\"\nname = \"c\"\nweights = \"c.safetensors\"\ninput_shape = [4]\n\
             [[layers]]\nop = \"relu\"\n",
        )
        .unwrap();
        let net = Network::from_card(&one, &TensorStore::new(), Path::new("one.toml")).unwrap();
        let e = translator_inputs(&net).unwrap_err().to_string();
        assert!(e.contains("one.toml") && e.contains("exactly two inputs"), "{e}");
    }
}
