//! Panics and catches N panics with a formatted message (a worker pool
//! isolating bad requests with catch_unwind), std's default hook printing
//! each to stderr; prints "ns/op <float>".
use std::time::Instant;

#[inline(never)]
fn parse(i: i64) -> i64 {
    if i >= 0 {
        panic!("not a number: {i}");
    }
    i
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let mut caught = 0u64;
    let start = Instant::now();
    for i in 0..n {
        if std::panic::catch_unwind(|| parse(std::hint::black_box(i as i64))).is_err() {
            caught += 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64;
    println!("caught {caught}\nns/op {:.1}", ns / n as f64);
}
