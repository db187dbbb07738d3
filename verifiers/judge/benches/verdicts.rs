//! Verdicts per second of the math checker on the MATH-500 gold answers: each gold judged
//! against a response that boxes it (correct) and one that boxes a perturbed value (wrong).
//!
//! cargo bench -p zoo-judge                 (reads ../shared/datasets/math500.jsonl, or
//! ZOO_DATASETS_DIR/math500.jsonl)

use std::time::Instant;

use zoo_judge::MathJudge;

fn golds() -> Vec<String> {
    let dir = std::env::var_os("ZOO_DATASETS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
        });
    let path = dir.join("math500.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read `{}`: {e}\nhint: set ZOO_DATASETS_DIR to the folder of math500.jsonl",
            path.display()
        )
    });
    text.lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            row["answer"]
                .as_str()
                .expect("an answer string")
                .to_string()
        })
        .collect()
}

fn main() {
    let golds = golds();
    let responses: Vec<(String, String, bool)> = golds
        .iter()
        .flat_map(|g| {
            [
                (
                    g.clone(),
                    format!("Reasoning...\nSo the answer is \\boxed{{{g}}}."),
                    true,
                ),
                (
                    g.clone(),
                    format!("Reasoning...\nSo the answer is \\boxed{{{g} + 1}}."),
                    false,
                ),
            ]
        })
        .collect();
    let judge = MathJudge::default();
    // Warm up, and check the verdicts while at it.
    let wrong = responses
        .iter()
        .filter(|(g, r, expected)| judge.check(g, r).correct != *expected)
        .count();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for (g, r, _) in &responses {
            std::hint::black_box(judge.check(g, r));
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "math verifier on {} MATH-500 verdicts: {:.0} verdicts/s (best of 5 passes, {:.1} µs each); {} verdicts disagree with the expected label",
        responses.len(),
        responses.len() as f64 / best,
        best / responses.len() as f64 * 1e6,
        wrong
    );
}
