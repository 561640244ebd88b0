//! Lets this crate's binaries, tests and examples find libtorch without LD_LIBRARY_PATH: an
//! rpath to the folder torch-sys found in the `torch` wheel (LIBTORCH_USE_PYTORCH=1), and
//! libtorch_cuda kept as a dependency where the wheel has it, so CUDA devices are found.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys reports where libtorch is (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
