//! Lets binaries find libtorch without LD_LIBRARY_PATH: an rpath to the `torch` wheel's
//! library folder for this crate's tests and examples, and the folder passed on to dependent
//! crates (`DEP_ZEST_KERNELS_LIBTORCH_LIB`) so that their binaries get the same rpath.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        // Keep libtorch_cuda loaded where the wheel has it, so CUDA devices are found.
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
        println!("cargo:libtorch_lib={lib}");
    }
}
