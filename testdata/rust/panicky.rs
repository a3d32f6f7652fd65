// A worker thread unwraps a None (Rust's most common crash); main unwraps
// the join result and exits 101, or the process aborts with panic=abort.
use std::thread;

#[inline(never)]
fn find_user(id: u32) -> Option<&'static str> {
    if id == 7 { Some("ada") } else { None }
}

#[inline(never)]
fn handle(id: u32) -> usize {
    find_user(id).unwrap().len()
}

fn main() {
    let worker = thread::Builder::new()
        .name("worker-7".into())
        .spawn(|| handle(42))
        .unwrap();
    let n = worker.join().unwrap();
    println!("{n}");
}
