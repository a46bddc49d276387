//! Rebuilds when the slab or shard size is overridden from the environment (see `src/sizes.rs`).
fn main() {
    println!("cargo:rerun-if-env-changed=FERROC_SLAB_SHIFT");
    println!("cargo:rerun-if-env-changed=FERROC_SHARD_SHIFT");
}
