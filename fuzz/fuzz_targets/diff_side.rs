//! `diff`'s reader, which tells a profile from an allowlist by its keys, and the comparison
//! of what it reads with itself (which must find no difference).
#![no_main]

use std::path::Path;

use agent_audit::diff::{diff, Side};
use agent_audit::seccomp::container::ContainerContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(side) = Side::parse(text, Path::new("fuzz-side.json"), &ContainerContext::default()) else {
        return;
    };
    let same = diff(&side, &side);
    assert!(same.is_empty(), "a side differs from itself:\n{}", same.to_text());
    let _ = same.to_json();
});
