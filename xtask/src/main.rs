//! Ferroc developer tasks (filled in by the xtask work).
fn main() {}
