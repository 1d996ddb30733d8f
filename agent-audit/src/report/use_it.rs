//! "Use it": the lines a reviewer pastes to run the workload under the profile (Docker,
//! compose, Kubernetes through the Security Profiles Operator) and to keep the profile current
//! in CI (`diff --fail-on added`), filled in with the report's own files and target.

use serde::Serialize;

use super::Summary;

/// Ready-to-paste lines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UseIt {
    /// The profile file the lines name (`profile.json` when the report reviewed a generated
    /// one: `agent-audit profile` writes it first).
    pub profile: String,
    /// `docker run` with the profile.
    pub docker: String,
    /// The compose service's `security_opt`.
    pub compose: String,
    /// The name of the Kubernetes `SeccompProfile` object (a DNS subdomain).
    pub kubernetes_name: String,
    /// Shell lines writing that object (the same allows as the profile) and applying it.
    pub kubernetes: String,
    /// The pod's `securityContext` that uses it (SPO installs it as `operator/<name>.json`).
    pub kubernetes_pod: String,
    /// The CI drift check: record the workload again, fail when it makes a call the profile
    /// does not allow.
    pub ci: String,
}

/// A recorded target: `kind: spec` split.
struct Target<'a> {
    kind: &'a str,
    spec: &'a str,
}

impl<'a> Target<'a> {
    fn parse(label: &'a str) -> Self {
        let (kind, spec) = label.split_once(": ").unwrap_or(("command", label));
        Target { kind, spec }
    }
}

/// The lines for this report; `image` is the audited container's image, when `verify` ran a
/// copy of it; `command` the recorded command's arguments, when the target is a command.
pub(super) fn use_it(summary: &Summary, image: Option<&str>, command: Option<&[String]>) -> UseIt {
    let generated = summary.profile.file.is_none();
    let profile = summary
        .profile
        .file
        .clone()
        .unwrap_or_else(|| "profile.json".into());
    let allowlists: Vec<String> = summary.runs.iter().map(|r| quote(&r.file)).collect();
    let target = summary
        .runs
        .first()
        .map_or(Target::parse(""), |r| Target::parse(&r.target));
    let name = object_name(&target);
    // The command as one line a shell splits back into the same arguments.
    let argv = command.map_or_else(
        || target.spec.to_string(),
        |args| args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
    );
    let p = quote(&profile);
    let mut docker = String::new();
    if generated {
        docker.push_str(&format!(
            "agent-audit profile {} -o profile.json\n",
            allowlists.join(" ")
        ));
    }
    let image = image.map_or_else(|| "IMAGE".to_string(), quote);
    docker.push_str(&match target.kind {
        "command" => format!("docker run --security-opt seccomp={p} {image} {argv}"),
        _ => format!(
            "# with the options the container was created with (volumes, user, network, command)\n\
             docker run --security-opt seccomp={p} {image}"
        ),
    });
    let base = if generated {
        String::new()
    } else {
        format!(" --base {p} --keep-base-allows")
    };
    UseIt {
        compose: format!("services:\n  {name}:\n    security_opt:\n      - seccomp={profile}"),
        kubernetes: format!(
            "agent-audit profile {}{base} --format spo-yaml --name {name} -o \
             {name}.seccompprofile.yaml\nkubectl apply -f {name}.seccompprofile.yaml",
            allowlists.join(" ")
        ),
        kubernetes_pod: format!(
            "securityContext:\n  seccompProfile:\n    type: Localhost\n    \
             localhostProfile: operator/{name}.json"
        ),
        ci: ci_lines(&target, &argv, &p),
        kubernetes_name: name,
        docker,
        profile,
    }
}

/// Record the workload again into `new.allowlist.json`, then fail on any call the committed
/// profile does not allow.
fn ci_lines(target: &Target, argv: &str, profile: &str) -> String {
    let record = match target.kind {
        "command" => format!("agent-audit run --out new.allowlist.json -- {argv}"),
        "container" => {
            let c = quote(target.spec);
            format!(
                "agent-audit record --wait --container {c} --out new.allowlist.json \
                 --ready-file armed &\nuntil agent-audit ready armed; do sleep 0.2; done\n\
                 docker start -a {c}; wait"
            )
        }
        _ => "agent-audit record --cgroup CGROUP --out new.allowlist.json".to_string(),
    };
    format!("{record}\nagent-audit diff --fail-on added {profile} new.allowlist.json")
}

/// A Kubernetes object name (DNS subdomain: lower-case alphanumerics, `-` and `.`, at most
/// 253, alphanumeric at both ends) for the target: a container's name, a command's program.
fn object_name(target: &Target) -> String {
    let base = match target.kind {
        "command" => target
            .spec
            .split_whitespace()
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or(""),
        _ => target.spec.rsplit('/').next().unwrap_or(""),
    };
    let mapped: String = base
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .take(253)
        .collect();
    let name = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if name.is_empty() {
        "workload".into()
    } else {
        name.into()
    }
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_subdomains() {
        let name = |label: &str| object_name(&Target::parse(label));
        assert_eq!(name("container: Squid_Proxy"), "squid-proxy");
        assert_eq!(name("command: /usr/bin/git clone x"), "git");
        assert_eq!(name("cgroup: /system.slice/nginx.service"), "nginx.service");
        assert_eq!(name("container: __"), "workload");
        assert_eq!(name("pid: 1234"), "1234");
    }

    #[test]
    fn words_with_shell_characters_are_quoted() {
        assert_eq!(quote("audit/profile.json"), "audit/profile.json");
        assert_eq!(quote("my dir/p.json"), "'my dir/p.json'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
