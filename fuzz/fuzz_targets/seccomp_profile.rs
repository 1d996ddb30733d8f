//! The seccomp profile reader (OCI/Docker JSON), then `check`, which lints the profile and
//! compiles it with libseccomp. Whatever the reader accepts must survive its own round trip.
#![no_main]

use std::path::Path;

use agent_audit::check;
use agent_audit::seccomp::SeccompProfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let path = Path::new("fuzz-profile.json");
    let Ok(profile) = SeccompProfile::parse(text, path) else {
        return;
    };
    let again = SeccompProfile::parse(&profile.to_json(), path).expect("an accepted profile re-reads");
    assert_eq!(again, profile, "the profile changed in its round trip");
    if let Ok(report) = check::check(&profile, path) {
        let _ = (report.to_text(), report.to_json());
    }
});
