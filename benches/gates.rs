//! The semantic cache's correctness gates on the request path: `Gates::check` on typical pairs
//! (a close near-repeat, an antonym trap, a free paraphrase), with WordNet loaded when installed.
//! `cargo bench --bench gates`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchyard::cache::gates::Gates;

fn gates(c: &mut Criterion) {
    let started = std::time::Instant::now();
    let g = Gates::load(None);
    eprintln!("Gates::load (WordNet {}) in {:?}", g.has_wordnet(), started.elapsed());
    let mut group = c.benchmark_group("gates_check");
    let pairs = [
        ("near_repeat", "How do I change my shipping address?", "Thanks! How do I change my shipping address?", 0.97),
        ("antonym", "How do I enable cookies in Safari?", "How do I disable cookies in Safari?", 0.93),
        ("swap", "What's the default port for PostgreSQL?", "What's the default port for MySQL?", 0.85),
        (
            "paraphrase",
            "My laptop is running really slow, what can I do?",
            "tips to speed up a sluggish notebook computer",
            0.72,
        ),
    ];
    for (name, a, b, cos) in pairs {
        group.bench_function(name, |bench| bench.iter(|| g.check(black_box(a), black_box(b), black_box(cos))));
    }
    group.finish();
}

criterion_group!(benches, gates);
criterion_main!(benches);
