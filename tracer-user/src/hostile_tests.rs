//! Hostile input for the parsers of outside data that the CLI corpus
//! (tests/hostile.rs) does not reach: ring-buffer records, /proc/PID/maps
//! text, the daemon's config. Random and mutated inputs from a fixed seed
//! (reproducible); each parser must answer or refuse, never panic.

/// A small deterministic generator (reproducible, no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_and_mutated_ring_buffer_records_never_panic() {
    use tracer_common::EventKind;
    let mut rng = Lcg(1);
    for i in 0..5_000 {
        // Mostly short (headers, truncated records), some stack-record sized.
        let mut bytes = rng.bytes(if i % 10 == 0 { 40 * 1024 } else { 1024 });
        // Half the time, a valid kind in front: the decoder's real work.
        if bytes.len() >= 4 && rng.next().is_multiple_of(2) {
            let kind = EventKind::ALL[(rng.next() as usize) % EventKind::ALL.len()] as u32;
            bytes[..4].copy_from_slice(&kind.to_ne_bytes());
        }
        let _ = crate::probes::records::decode(&bytes);
    }
}

#[test]
fn random_and_mutated_maps_lines_never_panic() {
    let good = "7f1000000000-7f1000002000 r-xp 00002000 fe:01 99   /usr/lib/libc.so.6\n";
    let mut rng = Lcg(2);
    for _ in 0..20_000 {
        let mut line: Vec<u8> = good.as_bytes().to_vec();
        for _ in 0..(rng.next() % 8) {
            let at = (rng.next() as usize) % line.len();
            match rng.next() % 3 {
                0 => line[at] = rng.next() as u8,
                1 => {
                    line.remove(at);
                }
                _ => line.insert(at, b"- :x0 \n"[(rng.next() % 7) as usize]),
            }
            if line.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&line);
        for e in crate::maps::parse(&text) {
            let _ = (e.executable(), e.is_file(), e.file_path());
        }
        let junk = String::from_utf8_lossy(&rng.bytes(200)).into_owned();
        let _ = crate::maps::parse(&junk);
    }
}

#[test]
fn mutated_daemon_configs_are_refused_or_accepted_never_panic() {
    let good = include_str!("../../packaging/crashtrace.toml");
    let mut rng = Lcg(3);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..3_000 {
        let mut text: Vec<u8> = good.as_bytes().to_vec();
        for _ in 0..(1 + rng.next() % 6) {
            let at = (rng.next() as usize) % text.len();
            text[at] = b"[]=\"#\n ax1/*.,"[(rng.next() % 14) as usize];
        }
        let text = String::from_utf8_lossy(&text);
        match toml::from_str::<crate::daemon::Config>(&text) {
            Ok(c) => {
                let _ = c.check();
                ok += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok} refused {refused}");
}
