//! `bench-memory PID`: the BPF maps process PID holds and its resident memory, as the kernel
//! accounts them (`agent_audit::bpf::footprint`), printed as one JSON object for
//! `cargo xtask bench`: `possible_cpus`, `rss`, `shared`, and for each CPU count given after
//! the pid (`at`: [cpus, what each CPU adds, all maps]), and each map's `name`, `memlock`
//! (bytes on this host) and `per_cpu` (bytes each possible CPU adds here).

use agent_audit::bpf::footprint::Footprint;

fn main() -> std::process::ExitCode {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map_while(|a| a.parse::<u64>().ok())
        .collect();
    let (Some(pid), cpus) = (
        args.first().and_then(|&p| u32::try_from(p).ok()),
        &args[1.min(args.len())..],
    ) else {
        eprintln!("usage: bench-memory PID [CPUS…]");
        return std::process::ExitCode::from(2);
    };
    let footprint = match Footprint::of_process(pid) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bench-memory: process {pid}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let maps: Vec<serde_json::Value> = footprint
        .maps
        .iter()
        .map(|m| serde_json::json!({"name": m.name, "memlock": m.memlock, "per_cpu": m.per_cpu}))
        .collect();
    let out = serde_json::json!({
        "possible_cpus": footprint.possible_cpus,
        "rss": footprint.rss,
        "shared": footprint.shared_bytes(),
        "at": cpus
            .iter()
            .map(|&n| serde_json::json!([n, footprint.per_cpu_bytes_at(n), footprint.maps_bytes_at(n)]))
            .collect::<Vec<_>>(),
        "maps": maps,
    });
    println!("{out}");
    std::process::ExitCode::SUCCESS
}
