//! Panics and catches N panics with a formatted message (a worker pool
//! isolating bad requests with catch_unwind); prints "ns/op <float>". The
//! panic hook is a no-op (a service's hook would log elsewhere): the
//! figure is the panic and its unwinding, not stderr's cost.
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
    std::panic::set_hook(Box::new(|_| {}));
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
