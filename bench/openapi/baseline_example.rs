//! `bench/openapi` copies this into a checkout of the engine before the
//! change report was rebuilt (issue 10) as `examples/bench_staging.rs`:
//! the same measurements as `openapi/examples/bench_staging.rs`, with that
//! engine's staging, which parsed the stored version and compared inside
//! the request. Prints one JSON line per round.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, old_path, new_path, rounds] = args.as_slice() else {
        eprintln!("usage: bench_staging OLD.json NEW.json ROUNDS");
        std::process::exit(2);
    };
    let old = std::fs::read_to_string(old_path).expect("old document");
    let new = std::fs::read_to_string(new_path).expect("new document");
    let rounds: usize = rounds.parse().expect("rounds");
    for _ in 0..rounds {
        let started = Instant::now();
        let imported = tollgate_openapi::parse(&new).expect("the new document imports");
        let import_ms = started.elapsed().as_secs_f64() * 1000.0;

        // The old stage(): the request had parsed the new document already; it parsed the stored one and compared.
        let started = Instant::now();
        let old_spec = tollgate_openapi::parse(&old).expect("old reads");
        let report = tollgate_openapi::compare(&old_spec.model, &imported.model);
        let stored = serde_json::to_string(&report).expect("json");
        let staging_ms = started.elapsed().as_secs_f64() * 1000.0 + import_ms;
        println!(
            "{{\"import_ms\":{import_ms:.1},\"staging_ms\":{staging_ms:.1},\"operations\":{},\"entries\":{},\"breaking\":{},\"report_bytes\":{}}}",
            imported.operations.len(),
            report.changes.len(),
            report.breaking_count,
            stored.len()
        );
    }
}
