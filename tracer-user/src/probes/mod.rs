//! Everything that touches the kernel: loading the eBPF object, attaching its
//! programs, and the maps shared with them.

pub mod btf;
pub mod kernel;
pub mod records;
#[cfg(test)]
mod stack_budget;
pub mod usdt;
