#!/usr/bin/env bash
# Install the system packages oci-model's setup, tests and benchmark need (Debian), and check
# the Rust toolchain. Idempotent: installs only what is missing.
#
# On a machine's first boot another apt process (unattended-upgrades) often holds the dpkg
# lock: apt-get waits for it (up to 5 minutes) instead of failing at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v buildah >/dev/null 2>&1 || need+=(buildah)          # the container image test (FROM scratch, vfs, chroot)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)        # TLS registry tests: CA + certificate
command -v script >/dev/null 2>&1 || need+=(bsdutils)        # a pseudo-terminal for the password prompt test
command -v mount >/dev/null 2>&1 || need+=(mount)             # the disk-full test mounts a small tmpfs
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# A C compiler and make: ring and aws-lc-rs build C code.
{ command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || need+=(build-essential)
[ -x /usr/bin/time ] || need+=(time)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)   # Debian's python3 ships venv without ensurepip
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
  $SUDO apt-get "${apt_opts[@]}" update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends "${need[@]}" >/dev/null
fi

# Rust: the version Cargo.toml asks for (Debian 12's apt cargo is 1.63, far too old).
wanted="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml")"
rustup_hint="install Rust with rustup (https://rustup.rs): curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh, then open a new shell (or: source \$HOME/.cargo/env)"
if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found; oci-model needs Rust $wanted or newer: $rustup_hint" >&2
  exit 1
fi
have="$(cargo --version | awk '{print $2}')"
# version_ge A B: A >= B, comparing dotted numbers.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -1)" = "$2" ]; }
if ! version_ge "${have%%-*}" "$wanted"; then
  echo "deps: cargo $have ($(command -v cargo)) is older than the Rust $wanted oci-model needs." >&2
  if command -v rustup >/dev/null 2>&1; then
    echo "deps: run: rustup update stable" >&2
  else
    echo "deps: Debian's apt cargo is too old; $rustup_hint" >&2
  fi
  exit 1
fi

# The test command also needs rustfmt and clippy.
missing_components=()
cargo fmt --version >/dev/null 2>&1 || missing_components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_components+=(clippy)
if [ ${#missing_components[@]} -gt 0 ]; then
  if command -v rustup >/dev/null 2>&1; then
    echo "deps: adding Rust components ${missing_components[*]}" >&2
    rustup component add "${missing_components[@]}"
  else
    echo "deps: cargo ${missing_components[*]} missing; install them with rustup: rustup component add ${missing_components[*]}" >&2
    exit 1
  fi
fi
