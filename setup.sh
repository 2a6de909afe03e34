#!/usr/bin/env bash
# Installs what gmmfr needs and is missing: MLIR/LLVM 22 from Debian and the C libraries LLVM
# links against. Idempotent: when everything is there it only checks (well under a second).
set -euo pipefail

packages=(llvm-22-dev libmlir-22-dev mlir-22-tools libclang-22-dev clang-22 libpolly-22-dev libomp-22-dev
          libzstd-dev zlib1g-dev libxml2-dev libz3-dev curl ca-certificates)

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

# Rust: edition 2024 with let-chains needs rustc >= 1.88; Debian 12's own rustc is older. When
# cargo is missing, rustup-init is fetched from static.rust-lang.org (sh.rustup.rs does not
# resolve from every build machine) and installs stable into ~/.cargo.
if [[ -d "$HOME/.cargo/bin" ]]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: installing Rust stable (minimal profile) with rustup into ~/.cargo" >&2
  # rustup-init picks its mode from its file name, so it keeps that name in a temporary directory.
  download=$(mktemp -d)
  init="$download/rustup-init"
  curl --proto '=https' --tlsv1.2 -sSfL \
    "https://static.rust-lang.org/rustup/dist/$(uname -m)-unknown-linux-gnu/rustup-init" -o "$init" \
    || { rm -rf "$download"; echo "setup: could not download rustup-init; install Rust >= 1.88 and re-run" >&2; exit 1; }
  chmod +x "$init"
  "$init" -y -q --profile minimal --default-toolchain stable || { rm -rf "$download"; exit 1; }
  rm -rf "$download"
  export PATH="$HOME/.cargo/bin:$PATH"
  echo "setup: Rust installed; in an already open shell run '. ~/.cargo/env' before cargo" >&2
fi
version=$(rustc --version | awk '{print $2}')
if [[ "$(printf '%s\n' 1.88.0 "$version" | sort -V | head -n1)" != "1.88.0" ]]; then
  echo "setup: rustc $version is too old: gmmfr needs Rust >= 1.88" >&2
  exit 1
fi
echo "setup: ok (MLIR 22 at /usr/lib/llvm-22, rustc $version)" >&2
