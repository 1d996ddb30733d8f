# Shared by start.sh and stop.sh: inputs, privileges, where the recorder's state lives.
set -euo pipefail

out_dir=${INPUT_OUT_DIR:-agent-audit}
binary=${INPUT_BINARY:-agent-audit}
# Loading the kernel program needs root; runners have passwordless sudo.
if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo --preserve-env=RUST_LOG); fi
# The recorder's pid, log and readiness file (kept next to the results, never uploaded by us).
state_dir="$out_dir/.recorder"
pid_file="$state_dir/pid"
log_file="$state_dir/record.log"
ready_file="$state_dir/ready"

die() {
    echo "::error::agent-audit: $*"
    exit 1
}

# `name=value` to $GITHUB_OUTPUT (values here are single lines).
output() {
    echo "$1=$2" >> "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
}
