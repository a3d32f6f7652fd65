#!/usr/bin/env bash
# Entry point for a fresh machine: installs the Rust toolchain pinned in
# rust-toolchain.toml when it is missing (rustup does not auto-install it),
# then runs `cargo xtask "$@"` (setup | build | demo | test).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v rustup >/dev/null 2>&1; then
    echo "xtask.sh: rustup not found: install Rust with rustup first (https://rustup.rs)" >&2
    exit 1
fi
# Idempotent: a no-op (about a second) once the toolchain and its
# components are there.
rustup toolchain install --no-self-update >/dev/null
exec cargo xtask "$@"
