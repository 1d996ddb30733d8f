//! The reader of Kubernetes `SeccompProfile` objects (JSON or YAML), the API server's checks,
//! and the conversion to the OCI model. What it accepts must survive both of its own writers.
#![no_main]

use agent_audit::seccomp::spo::SpoObject;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(object) = SpoObject::parse(text) else {
        return;
    };
    let _ = object.validate();
    let _ = object.to_profile();
    for written in [object.to_json(), object.to_yaml()] {
        let again = SpoObject::parse(&written).expect("an accepted object re-reads");
        assert_eq!(again, object, "the object changed in its round trip:\n{written}");
    }
});
