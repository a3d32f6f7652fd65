//! The Go benchmark program (testdata/go/bench): the go and events parts
//! run it, and the fuzz seeds of `cargo xtask stress` include it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Result;

use crate::util::{run, workspace_root};

/// The Go benchmark program (testdata/go/bench), built with `go`.
pub(crate) fn build_go_bench(go: &Path, version: &str) -> Result<PathBuf> {
    build_go_program(go, version, "bench")
}

/// testdata/go/NAME built with `go` into target/bench.
pub(crate) fn build_go_program(go: &Path, version: &str, name: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let bin = root.join(format!("target/bench/{name}-go{version}"));
    fs::create_dir_all(root.join("target/bench"))?;
    run(Command::new(go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(root.join(format!("testdata/go/{name}/main.go")))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "off")
        .env("GOCACHE", root.join("target/bench/gocache"))
        .env("GOPATH", root.join("target/bench/gopath")))?;
    Ok(bin)
}
