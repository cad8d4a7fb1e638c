//! Embedding throughput: batches of 1, 8 and 32 short prompts in one session run, and
//! tokenisation alone. Needs the model (`scripts/setup-model.sh`); without it the bench says so
//! and measures nothing. `cargo bench --bench embed`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use switchyard::embed::{default_model_dir, Embedder};

const PROMPTS: [&str; 8] = [
    "how do I reset my password",
    "what are the steps to change my login",
    "what's the weather in Paris tomorrow",
    "refund for order 1182",
    "how do I enable two-factor authentication",
    "best way to learn rust as a python developer",
    "translate good morning into French",
    "is it safe to take ibuprofen with coffee",
];

fn embed(c: &mut Criterion) {
    let mut model = match Embedder::load(&default_model_dir(), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("embed bench skipped: {e}");
            return;
        }
    };
    c.bench_function("tokenize_8", |b| b.iter(|| model.token_counts(black_box(&PROMPTS)).unwrap()));
    let mut g = c.benchmark_group("embed");
    for n in [1usize, 8, 32] {
        let texts: Vec<&str> = PROMPTS.iter().cycle().take(n).copied().collect();
        g.bench_with_input(BenchmarkId::new("batch", n), &texts, |b, t| {
            b.iter(|| model.embed_batch(black_box(t)).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = embed
}
criterion_main!(benches);
