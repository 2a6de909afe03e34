#!/usr/bin/env bash
# The main job on the bundled example: build, verify and summarize the MoE layer module, then
# fuse its grouped matmul + finalize pair and print the fused IR with the fusion remarks.
set -euo pipefail
cd "$(dirname "$0")/.."
# setup.sh may just have installed Rust into ~/.cargo (not yet on this shell's PATH).
if [[ -d "$HOME/.cargo/bin" ]]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
cargo build --release -q
gmmfr=./target/release/gmmfr
example=examples/moe_layer.mlir

echo "== verify: $example"
"$gmmfr" verify "$example"
echo
echo "== fuse: gmmfr opt $example --pass-pipeline npu-fuse-gmm-finalize --remarks text --pass-statistics"
"$gmmfr" opt "$example" --pass-pipeline npu-fuse-gmm-finalize --remarks text --pass-statistics
echo
echo "== run: fuse, lower to loops, JIT, run on random inputs, compare with the reference interpreter"
"$gmmfr" run "$example" --entry moe_layer_unfused --pass-pipeline npu-fuse-gmm-finalize --random-inputs 1 --check --threads 2
"$gmmfr" run "$example" --entry moe_layer_fused --random-inputs 1 --check --threads 2
echo
echo "== analyze: gmmfr analyze $example (every MoE combine candidate, without changing the module)"
"$gmmfr" analyze "$example"
