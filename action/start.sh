#!/usr/bin/env bash
# `start`: arm `agent-audit record --wait` in the background for a container name or a cgroup
# pattern, and return once it is armed (every matching container started after this is
# recorded from its first syscall).
. "$(dirname "$0")/common.sh"

if [ -n "${INPUT_CONTAINER:-}" ] && [ -n "${INPUT_CGROUP_GLOB:-}" ]; then
    die "give container or cgroup-glob, not both"
fi
if [ -n "${INPUT_CONTAINER:-}" ]; then
    # Until `stop`: every start of the container (a restart, `docker compose restart`, a
    # health check's) is added to its one allowlist.
    target=(--container "$INPUT_CONTAINER" --keep-waiting --out "$out_dir/$INPUT_CONTAINER.allowlist.json")
elif [ -n "${INPUT_CGROUP_GLOB:-}" ]; then
    # Until `stop`, however many matching cgroups come and go.
    target=(--cgroup-glob "$INPUT_CGROUP_GLOB" --keep-waiting --out-dir "$out_dir")
else
    die "start needs container or cgroup-glob"
fi
pin=()
# Counts kept in the kernel across a recorder's death: another `start` adopts them.
[ -n "${INPUT_PIN_DIR:-}" ] && pin=(--pin-dir "$INPUT_PIN_DIR")
command -v "$binary" > /dev/null || die "$binary not found (set the binary input)"
if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2> /dev/null; then
    die "a recorder started by this action already runs (pid $(cat "$pid_file"))"
fi
mkdir -p "$state_dir"
rm -f "$ready_file"

# setsid + redirections: the recorder outlives this step and holds none of its pipes.
setsid "${sudo[@]}" "$(command -v "$binary")" record --wait "${target[@]}" "${pin[@]}" \
    --ready-file "$ready_file" < /dev/null > "$log_file" 2>&1 &
echo $! > "$pid_file"

timeout=${INPUT_READY_TIMEOUT:-120}
deadline=$((SECONDS + timeout))
until "$binary" ready "$ready_file" > /dev/null 2>&1; do
    if ! kill -0 "$(cat "$pid_file")" 2> /dev/null; then
        cat "$log_file"
        die "the recorder exited before it was armed (log above)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        cat "$log_file"
        die "the recorder was not armed within ${timeout}s (log above)"
    fi
    sleep 0.2
done
head -n 1 "$log_file"
output out-dir "$out_dir"
