//! Tests of libferroc.so and libferroc.a from C and C++: the header, the `fe_*` API, the C
//! semantics of the override, C++ `operator new`/`delete`, processes (fork, threads, start-up
//! and exit), the thread-local model, and real programs under `LD_PRELOAD`.
//!
//! Every test builds what it needs through [`support`]: the libraries (a child cargo into
//! `target/tmp`) and the C/C++ programs of `tests/c` (with `cc`/`c++`).

mod cxx;
mod glibc;
mod header;
mod introspect;
mod options;
mod processes;
mod programs;
mod semantics;
mod support;
mod tls;
