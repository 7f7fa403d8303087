#!/usr/bin/env bash
# Run every fuzz target for a bounded time each, on the stable toolchain
# (no sanitizer: kubesu has no unsafe code outside src/sys/, which these
# targets do not reach).
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). A crash leaves its input
# in fuzz/artifacts/TARGET/ and makes this script fail; replay it with
# `cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
for target in config spark_submit names; do
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" -- -max_total_time="$seconds"
done
