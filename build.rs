//! Makes the `tgcn` binary self-contained: embed an rpath to the libtorch folder that
//! `torch-sys` found, and link `libtorch_cuda` even though no symbol references it, so
//! that the same binary reports and uses CUDA on a GPU machine. Also compiles
//! `csrc/fused_adam.cpp` against that libtorch's headers: libtorch's fused Adam kernel and
//! grad reset, which tch does not expose; and `csrc/module_bytes.cpp`: a TorchScript module
//! serialised into memory, so that a full disk is an error rather than a crash.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is unset: no rpath embedded");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rerun-if-changed=csrc/fused_adam.cpp");
    println!("cargo:rerun-if-changed=csrc/module_bytes.cpp");
    let include = Path::new(&lib).join("../include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/fused_adam.cpp")
        .file("csrc/module_bytes.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++20")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("tgcn_fused_adam");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // Record the libtorch version (torch/version.py sits one folder above torch/lib).
    let version = std::fs::read_to_string(Path::new(&lib).join("../version.py"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("__version__")).and_then(|l| l.split('\'').nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TGCN_LIBTORCH_VERSION={version}");
}
