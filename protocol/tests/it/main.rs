//! Golden fixtures: the JSON in `tests/fixtures/` is the wire contract. Other implementations
//! (and the server's and agent's own tests) can rely on it; renaming a field breaks these tests.
//!
//! After an intentional change, regenerate with
//! `UPDATE_FIXTURES=1 cargo test -p tollgate-protocol --test it` and review the diff.

mod binary;
mod golden;
mod keys;
mod routing;
