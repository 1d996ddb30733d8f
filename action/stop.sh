#!/usr/bin/env bash
# `stop`: end the recorder with SIGTERM (it writes its final files first), generate the profile,
# its rationale and the reports, write the Markdown report to the step summary, set the
# outputs, and with fail-on-new fail when the workload used a syscall the committed profile
# does not allow.
. "$(dirname "$0")/common.sh"

# GitHub refuses a step summary over 1 MiB.
readonly SUMMARY_LIMIT=$((1024 * 1024))

if [ "${INPUT_FAIL_ON_NEW:-false}" = true ] && [ -z "${INPUT_PROFILE:-}" ]; then
    die "fail-on-new needs the committed profile (input profile)"
fi
[ -s "$pid_file" ] || die "no recorder was started in $out_dir (run the action with command: start first)"
pid=$(cat "$pid_file")
if kill -0 "$pid" 2> /dev/null || "${sudo[@]}" kill -0 "$pid" 2> /dev/null; then
    "${sudo[@]}" kill -TERM "$pid" 2> /dev/null || true
fi
for _ in $(seq 1 600); do
    "${sudo[@]}" kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
done
if "${sudo[@]}" kill -0 "$pid" 2> /dev/null; then
    die "the recorder (pid $pid) did not exit within 60 s of SIGTERM"
fi
rm -f "$pid_file"
# The final files are written: nothing of the recorder stays attached after the job.
if [ -n "${INPUT_PIN_DIR:-}" ]; then
    "${sudo[@]}" "$(command -v "$binary")" unpin "$INPUT_PIN_DIR"
fi
echo "agent-audit: recorder log:"
cat "$log_file" 2> /dev/null || true

mapfile -t allowlists < <(find "$out_dir" -maxdepth 1 -name '*.allowlist.json' | sort)
[ "${#allowlists[@]}" -gt 0 ] ||
    die "no allowlist in $out_dir: did the workload start after the start step, with the name or pattern given?"

profile="$out_dir/profile.json"
"$binary" profile "${allowlists[@]}" -o "$profile" --rationale "$out_dir/rationale.md"
base=()
[ -n "${INPUT_PROFILE:-}" ] && base=(--base "$INPUT_PROFILE")
for format in md json; do
    "$binary" report "${allowlists[@]}" --profile "$profile" "${base[@]}" \
        --format "$format" -o "$out_dir/report.$format"
done

# New syscalls: used by the workload, not allowed by the committed profile.
new=()
failed=0
if [ -n "${INPUT_PROFILE:-}" ]; then
    for list in "${allowlists[@]}"; do
        mapfile -t -O "${#new[@]}" new < <("$binary" diff --format json --fail-on never \
            "$INPUT_PROFILE" "$list" | jq -r '.added[]')
        "$binary" diff --fail-on added "$INPUT_PROFILE" "$list" > /dev/null || failed=1
    done
    mapfile -t new < <(printf '%s\n' "${new[@]}" | sed '/^$/d' | sort -u)
fi

{
    if [ "${#new[@]}" -gt 0 ]; then
        echo "> [!WARNING]"
        echo "> Syscalls the committed profile \`$INPUT_PROFILE\` does not allow: ${new[*]}"
        echo
    fi
    cat "$out_dir/report.md"
} > "$out_dir/summary.md"
summary_size=$(stat -c %s "$out_dir/summary.md")
if [ "$summary_size" -gt "$SUMMARY_LIMIT" ]; then
    note="*(report cut at 1 MiB, the step summary's limit: the whole report is $out_dir/report.md)*"
    head -c $((SUMMARY_LIMIT - ${#note} - 2)) "$out_dir/summary.md" | sed '$d' > "$out_dir/summary.cut"
    printf '\n%s\n' "$note" >> "$out_dir/summary.cut"
    mv "$out_dir/summary.cut" "$out_dir/summary.md"
fi
cat "$out_dir/summary.md" >> "${GITHUB_STEP_SUMMARY:?GITHUB_STEP_SUMMARY is not set}"

report="$out_dir/report.json"
output out-dir "$out_dir"
output allowlists "${allowlists[*]}"
output profile "$profile"
output report-md "$out_dir/report.md"
output report-json "$report"
output calls "$(jq '.summary.totals.calls' "$report")"
output distinct "$(jq '.summary.totals.distinct_names' "$report")"
output dangerous "$(jq '.findings.dangerous_observed | length' "$report")"
output findings "$(jq '.verdict.findings' "$report")"
output verdict "$(jq -r '.verdict.status' "$report")"
output new-syscalls "${new[*]}"
output new-count "${#new[@]}"

if [ "${INPUT_FAIL_ON_NEW:-false}" = true ] && [ "$failed" -ne 0 ]; then
    die "the workload used syscalls $INPUT_PROFILE does not allow: ${new[*]}"
fi
