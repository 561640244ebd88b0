//! Lets this crate's binaries, tests and examples find libtorch without LD_LIBRARY_PATH: an
//! rpath to the folder torch-sys found in the `torch` wheel (LIBTORCH_USE_PYTORCH=1), and
//! libtorch_cuda kept as a dependency where the wheel has it, so CUDA devices are found.
//!
//! Also compiles `csrc/dist.cpp`, the C shim over libtorch's c10d process groups (Gloo) that
//! `dist` calls, against the wheel's headers.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys reports where libtorch is (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let include = std::path::Path::new(&lib)
        .parent()
        .expect("libtorch's lib folder has a parent")
        .join("include");
    // The torch wheels since 2.7 use the C++11 ABI (torch._C._GLIBCXX_USE_CXX11_ABI).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include("csrc")
        .include("csrc/gloo_decl")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/dist.cpp")
        .compile("zest_dist");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
