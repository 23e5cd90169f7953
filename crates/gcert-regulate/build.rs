//! Sets an rpath to libtorch's library directory (handed on by gcert-torch as `DEP_GCERT_TORCH_LIBTORCH_LIB`)
//! so that this crate's tests and doctests run without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_GCERT_TORCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_GCERT_TORCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={dir}");
    }
}
