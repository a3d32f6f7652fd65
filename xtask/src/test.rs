//! `cargo xtask test`: `cargo fmt --check`, then every test (as root).

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{is_root, run, step, workspace_root};

pub(crate) fn test(extra: &[String]) -> Result<()> {
    if !is_root() {
        bail!(
            "the tests load eBPF programs and trace real processes: run them as root (./xtask.sh test)"
        );
    }
    let root = workspace_root();
    step("cargo fmt --check");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    step("running the tests");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["test", "--workspace", "--exclude", "tracer-ebpf"])
        .args(extra))
}
