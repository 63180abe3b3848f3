//! Black-box tests of Cobot live in `it/` (one test binary, `cargo test -p tests`); this library is empty.
