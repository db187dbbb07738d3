//! Where CEPO's two teachers disagree: on held-out `addition-habit` problems, the per-token
//! `Δ_t = ℓ^{T+}_t − ℓ^{T−}_t` of a base policy scoring one response after the gold-answer
//! hint and after the wrong-answer hint (the habit's answer, the group's typical wrong answer).
//! Prints one response token by token, then `|Δ|` summaries for habit (wrong) responses and
//! correct ones.
//!
//! Run: `cargo run --release --example cepo_contrast -- BASE.safetensors [PROBLEMS]`, with
//! BASE the `addition-habit-*.safetensors` base policy in `$ZOO_CACHE_DIR/base/` (made by
//! `zoo sft --task addition-habit` or the first `zoo train --task addition-habit`).

use anyhow::{Context, Result};
use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::{Hint, Policy, Task, TokenMatrix};
use zoo::zoo_models::TinyPolicy;
use zoo::zoo_verifiers::{Arithmetic, Kind};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .context("usage: cepo_contrast BASE.safetensors [PROBLEMS]")?;
    let problems: usize = args.get(2).map_or(Ok(200), |s| s.parse())?;
    let policy = TinyPolicy::load(std::path::Path::new(path), &Device::flex().autodiff())?;
    let task = Arithmetic::new(Kind::CarryHabit);
    let tokenizer = policy.tokenizer();
    let encode = |text: &str| -> Result<Vec<u32>> { Ok(tokenizer.encode_prompt(text)?) };

    // (problem text, response, Δ per token) for habit responses and for correct ones.
    let mut rows: [Vec<(String, Vec<f32>)>; 2] = [Vec::new(), Vec::new()];
    for problem in task.heldout().iter().take(problems) {
        let Some((habit_chain, habit_answer)) = task.habit(problem) else {
            continue; // no carry: no habit, no wrong answer of this kind
        };
        let gold = encode(&task.hinted_prompt(problem, &Hint::Answer(problem.answer.clone())))?;
        let wrong = encode(&task.hinted_prompt(problem, &Hint::Answer(habit_answer)))?;
        for (k, response) in [habit_chain, problem.solution.clone()]
            .into_iter()
            .enumerate()
        {
            let mut tokens = tokenizer.encode(&response)?;
            tokens.push(tokenizer.eos());
            let score = |context: &Vec<u32>| {
                let lp = policy.token_logprobs(
                    std::slice::from_ref(context),
                    std::slice::from_ref(&tokens),
                    1.0,
                    false,
                );
                TokenMatrix::from_tensor(lp).data
            };
            let delta: Vec<f32> = score(&gold)
                .iter()
                .zip(score(&wrong))
                .map(|(p, n)| p - n)
                .collect();
            rows[k].push((format!("{}{response}", problem.prompt), delta));
        }
    }
    let (example, delta) = &rows[0][0];
    println!("habit response `{example}`: Δ per token (gold-hint − wrong-hint log-prob)");
    let text: Vec<char> = example
        .split('=')
        .skip(1)
        .collect::<Vec<_>>()
        .join("=")
        .chars()
        .collect();
    for (c, d) in text
        .iter()
        .map(|c| c.to_string())
        .chain(["<eos>".into()])
        .zip(delta)
    {
        println!("  {c:>5}  {d:+.3}");
    }
    for (name, rows) in ["habit (wrong) responses", "correct responses"]
        .iter()
        .zip(&rows)
    {
        let all: Vec<f32> = rows.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        let mean = all.iter().map(|d| d.abs()).sum::<f32>() / all.len() as f32;
        let big = all.iter().filter(|d| d.abs() > 0.5).count() as f32 / all.len() as f32;
        let peak = rows
            .iter()
            .map(|(_, d)| d.iter().fold(0f32, |m, x| m.max(x.abs())))
            .sum::<f32>()
            / rows.len() as f32;
        println!(
            "{name} ({} problems with a carry): mean |Δ| {mean:.3} per token, {:.1}% of tokens above 0.5, mean of each response's max |Δ| {peak:.3}",
            rows.len(),
            100.0 * big
        );
    }
    Ok(())
}
