#!/usr/bin/env bash
# Fuzz edgehook's parsers with cargo-fuzz (libFuzzer), each target for a bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET…]     default: 60 s for each of event, lines, config
#
# Needs a nightly toolchain (cargo-fuzz instruments with -Zsanitizer) and cargo-fuzz
# (installed from crates.io if missing). The corpus grows in fuzz/corpus/<target> across
# runs; a crash leaves its input in fuzz/artifacts/<target>/ and fails the script.
# Not part of .ci/run by default (minutes, and nightly); `.ci/run --fuzz` runs it.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event lines config)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz/run.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

declare -A dict=([event]=dict/json.dict [lines]=dict/json.dict [config]=dict/toml.dict)
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="corpus/$target.log"
  echo "== fuzz $target for ${secs}s (log: fuzz/$log)"
  # -max_len: room for whole config files and nesting bombs; -timeout: a slow input
  # (a hang) is a finding too; -rss_limit_mb: so is unbounded memory.
  if cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -dict="${dict[$target]}" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(#[0-9]+ +DONE|stat::(number_of_executed_units|peak_rss_mb|new_units_added))' "$log" || true
  else
    grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked|artifact_prefix|Test unit written|Error)' "$log" || tail -20 "$log"
    echo "!! $target found a problem; the input is in fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit $status
