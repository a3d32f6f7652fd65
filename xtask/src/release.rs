//! `cargo xtask build` and `cargo xtask demo`: the release build of
//! crashtrace, and the demo program traced as it crashes. `compile_c`
//! builds the C test programs for the demo, bench and stress.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

use crate::util::{is_root, run, step, workspace_root};

pub(crate) fn build_release() -> Result<PathBuf> {
    step("building crashtrace (release)");
    run(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "tracer-user",
    ]))?;
    Ok(workspace_root().join("target/release/crashtrace"))
}

pub(crate) fn compile_c(src: &Path, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    run(Command::new("gcc")
        .args(["-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o"])
        .arg(out)
        .arg(src))
}

pub(crate) fn demo() -> Result<()> {
    let crashtrace = build_release()?;
    let root = workspace_root();
    let target = root.join("target/demo/checkout-service");
    compile_c(&root.join("demo/checkout-service.c"), &target)?;
    step("running the demo: crashtrace run -- target/demo/checkout-service");
    eprintln!();
    let mut cmd = if is_root() {
        Command::new(&crashtrace)
    } else {
        step("not root: using sudo (crashtrace loads eBPF programs)");
        let mut c = Command::new("sudo");
        c.arg(&crashtrace);
        c
    };
    let status = cmd.arg("run").arg("--").arg(&target).status()?;
    eprintln!();
    step(&format!(
        "the demo program ended with status {} (crashtrace run passes it through); \
         try --format ndjson for the machine-readable records",
        status.code().map_or_else(|| "?".into(), |c| c.to_string())
    ));
    Ok(())
}
