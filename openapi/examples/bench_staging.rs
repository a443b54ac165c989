//! What `bench/openapi` times, for one pair of documents: importing the new
//! one (`parse`, as `POST /admin/api/v1/apis` does), and staging it against
//! the old one as the background job does (both read side by side, compared,
//! the report serialised for storage). Prints one JSON line per round.
//!
//! `bench/openapi/baseline_example.rs` is the same for the engine before the
//! change report was rebuilt, which staged inside the request.

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
        drop(imported);

        let started = Instant::now();
        let (old_spec, new_spec) = std::thread::scope(|s| {
            let old_spec = s.spawn(|| tollgate_openapi::reparse(&old));
            let new_spec = tollgate_openapi::reparse(&new);
            (old_spec.join().expect("thread").expect("old reads"), new_spec.expect("new reads"))
        });
        let report = tollgate_openapi::compare_with(
            &old_spec.model,
            &new_spec.model,
            tollgate_openapi::CompatibilityPolicy::Strict,
            &mut |_, _| {},
        );
        let stored = serde_json::to_string(&report).expect("json");
        let staging_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{{\"import_ms\":{import_ms:.1},\"staging_ms\":{staging_ms:.1},\"operations\":{},\"entries\":{},\"breaking\":{},\"report_bytes\":{}}}",
            new_spec.operations.len(),
            report.changes.len(),
            report.breaking_count,
            stored.len()
        );
    }
}
