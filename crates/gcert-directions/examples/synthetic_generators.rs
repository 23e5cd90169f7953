//! Writes the synthetic generators of `gcert_directions::synthetic` as model cards, for trying the CLI:
//!
//! ```text
//! cargo run -p gcert-directions --example synthetic_generators -- OUT_DIR
//! ```
//!
//! `geometric.toml` (latent 16: rotation, translation x/y and scale of a rectangle, mixed), `separable.toml`
//! (latent 30, the background outside the square 4,4,8,8 of a 16×16 image depends on 5 latent directions),
//! `dcgan-50.toml` (a random DCGAN-shaped generator), and a zero latent point `z16.npy`, `z30.npy`, `z50.npy`.

use std::path::PathBuf;

use gcert_core::network::save_card;
use gcert_core::npy::write_npy;
use gcert_core::tensors::Precision;
use gcert_directions::synthetic;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: synthetic_generators OUT_DIR")?);
    std::fs::create_dir_all(&dir)?;
    for g in [
        synthetic::geometric(16, 3),
        synthetic::separable(30, 5, 16, [4, 4, 8, 8], 4),
        synthetic::dcgan(50, 7)?,
    ] {
        let path = dir.join(format!("{}.toml", g.card.name));
        save_card(&path, &g.card, &g.tensors, Precision::F32, false)?;
        println!("wrote {}", path.display());
    }
    for k in [16, 30, 50] {
        write_npy(&dir.join(format!("z{k}.npy")), &[k], &vec![0.0; k])?;
    }
    Ok(())
}
