//! Names the shared library `libferroc.so` inside (its soname), whatever file name cargo gives
//! it (`cargo xtask capi` copies it to `libferroc.so`).
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libferroc.so");
    }
}
