//! The allowlist reader (`agent-audit/allowlist/v1`), then what `profile` does with what it
//! accepts: merge and plan. Whatever it accepts must also survive its own round trip.
#![no_main]

use std::path::Path;

use agent_audit::allowlist::Allowlist;
use agent_audit::profile::{build, Merged, ProfileOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let path = Path::new("fuzz.allowlist.json");
    let Ok(list) = Allowlist::parse(text, path) else {
        return;
    };
    let again = Allowlist::parse(&list.to_json(), path).expect("an accepted allowlist re-reads");
    assert_eq!(again, list, "the allowlist changed in its round trip");
    let merged = Merged::new([("fuzz".to_string(), list)]);
    let options = ProfileOptions {
        baseline: true,
        ..ProfileOptions::default()
    };
    let _ = build::plan(&merged, &options);
});
