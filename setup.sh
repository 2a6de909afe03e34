#!/usr/bin/env bash
# Installs what gmmfr needs and is missing: MLIR/LLVM 22 from Debian and the C libraries LLVM
# links against. Idempotent: when everything is there it only checks (well under a second).
set -euo pipefail

packages=(llvm-22-dev libmlir-22-dev mlir-22-tools libclang-22-dev clang-22 libpolly-22-dev libomp-22-dev
          libzstd-dev zlib1g-dev libxml2-dev libz3-dev)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo; install as root: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x /usr/lib/llvm-22/bin/mlir-tblgen ]] || { echo "setup: /usr/lib/llvm-22 is incomplete (no mlir-tblgen)" >&2; exit 1; }

# Rust: edition 2024 with let-chains needs rustc >= 1.88. Debian 12's own rustc is older, and
# rustup's servers are not reachable from every build machine, so this checks and explains.
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust >= 1.88 (rustup, https://rustup.rs) and re-run" >&2
  exit 1
fi
version=$(rustc --version | awk '{print $2}')
if [[ "$(printf '%s\n' 1.88.0 "$version" | sort -V | head -n1)" != "1.88.0" ]]; then
  echo "setup: rustc $version is too old: gmmfr needs Rust >= 1.88" >&2
  exit 1
fi
echo "setup: ok (MLIR 22 at /usr/lib/llvm-22, rustc $version)" >&2
