//! The reader of `verify` result files (`report --verify`).
#![no_main]

use std::path::Path;

use agent_audit::report::VerifyResult;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = VerifyResult::parse(text, Path::new("fuzz-verify.json"));
});
