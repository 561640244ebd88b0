//! Gives `zest-torch` (and the tests) an rpath to libtorch (the folder zest-kernels found
//! through the `torch` wheel), so they run without LD_LIBRARY_PATH. `zest` itself does not
//! load libtorch.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = std::env::var("DEP_ZEST_KERNELS_LIBTORCH_LIB") {
        for target in ["bin=zest-torch", "tests"] {
            println!("cargo:rustc-link-arg-{target}=-Wl,-rpath,{lib}");
            if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
                println!(
                    "cargo:rustc-link-arg-{target}=-Wl,--no-as-needed,-ltorch_cuda,--as-needed"
                );
            }
        }
    }
}
