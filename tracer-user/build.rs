//! Builds the eBPF object (tracer-ebpf) with the pinned nightly and
//! bpf-linker, into OUT_DIR, where src/probes/kernel.rs embeds it.

/// The nightly that compiles tracer-ebpf. bpf-linker must be linked against
/// this toolchain's LLVM: `cargo xtask setup` installs both. Keep in sync
/// with xtask/src/setup.rs.
const EBPF_TOOLCHAIN: &str = "nightly-2026-10-29";

fn main() -> anyhow::Result<()> {
    use anyhow::Context as _;
    println!("cargo::rerun-if-env-changed=CARGO_CFG_FUZZING");
    if std::env::var_os("CARGO_CFG_FUZZING").is_some() {
        // `cargo fuzz` builds the parsers (--cfg fuzzing): the fuzz targets
        // load no BPF, and the eBPF build must not see its sanitizer flags.
        let out = std::env::var_os("OUT_DIR").context("OUT_DIR")?;
        std::fs::write(std::path::Path::new(&out).join("tracer"), [])?;
        return Ok(());
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "tracer-ebpf")
        .context("tracer-ebpf package not found in the workspace")?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .context("tracer-ebpf manifest has no parent directory")?
        .as_str()
        .to_owned();
    println!("cargo::rerun-if-env-changed=PATH");
    // aya-build forwards the inner cargo's stderr as `cargo::warning`
    // lines: quiet, it has nothing to say unless something is wrong (the
    // compiler's own diagnostics still come through).
    // SAFETY: the build script is single-threaded at this point.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )
    .context(
        "building the eBPF programs failed; run `cargo xtask setup` to install the \
         pinned nightly and bpf-linker",
    )
}
