//! Target selection per strategy: ns per pick with 2, 8 and 64 targets (all healthy, none tried),
//! plus the worst case where all but the last target were already tried.
//! `cargo bench --bench routing`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use switchyard::config::Config;
use switchyard::routing::RouteTable;

fn table(strategy: &str, n: usize) -> RouteTable {
    let mut text = String::from("providers:\n");
    for i in 0..n {
        text += &format!("  p{i}: {{ kind: openai, base_url: \"http://127.0.0.1:{}/v1\" }}\n", 10_000 + i);
    }
    text += &format!("models:\n  m:\n    strategy: {strategy}\n    targets:\n");
    for i in 0..n {
        text += &format!("      - {{ provider: p{i}, model: x{i}, weight: {}, cost_rank: {} }}\n", 1 + i % 3, i % 5);
    }
    RouteTable::build(&Config::parse(&text, |_| None).unwrap(), 0, None).unwrap()
}

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    for strategy in ["weighted", "round-robin", "least-latency", "least-busy", "cost"] {
        for n in [2usize, 8, 64] {
            let t = table(strategy, n);
            let route = t.get("m").unwrap().clone();
            g.bench_with_input(BenchmarkId::new(strategy, n), &route, |b, r| b.iter(|| r.select(black_box(0), None)));
        }
    }
    let t = table("weighted", 64);
    let route = t.get("m").unwrap().clone();
    let tried = u64::MAX >> 1;
    g.bench_function("weighted/64-all-but-one-tried", |b| b.iter(|| route.select(black_box(tried), None)));
    g.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
