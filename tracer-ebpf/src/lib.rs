#![no_std]
// This crate's real product is the `tracer` binary (src/main.rs), built for
// bpfel-unknown-none by tracer-user's build script. The empty library target
// lets tracer-user name it as a build dependency so cargo rebuilds on change.
