//! The one hash the agent's shims key their caches by (the C# shim's compiled programs,
//! the Go shim's built binaries).

use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Hex SHA-256 of the parts, separated so that ("ab", "c") and ("a", "bc") differ.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0]);
    }
    h.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
