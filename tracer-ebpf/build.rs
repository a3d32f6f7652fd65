use which::which;

/// Rebuild the eBPF object when bpf-linker changes (e.g. `cargo xtask setup`
/// relinked it against another LLVM): cargo does not track the linker.
fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo::rerun-if-changed={}", linker.display());
    }
}
