//! Sets an rpath to libtorch's library directory so that the binaries and tests of this crate run without
//! `LD_LIBRARY_PATH`, and passes that directory on to dependents (`DEP_GCERT_TORCH_LIBTORCH_LIB`).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={dir}");
        // Keep libtorch (and through it libtorch_cuda where the wheel has it) linked even though no symbol of
        // it is referenced directly: otherwise CUDA is silently unavailable.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:libtorch_lib={dir}");
    }
}
