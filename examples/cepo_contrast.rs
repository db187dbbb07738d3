//! Where CEPO's two teachers disagree: on held-out problems with a carry, the per-token
//! `Δ_t = ℓ^{T+}_t − ℓ^{T−}_t` of a base policy scoring one response after the gold-answer
//! hint and after the wrong-answer hint. The wrong response is the task's typical error, its
//! answer the wrong hint (the group's most frequent wrong answer):
//! - `addition-habit`: the correct chain with the carry-less answer (`...;=>826` for 936);
//! - `addition`: the chain with its first carry dropped (`7+9=16;4+8=12c1;...;=>926`).
//!
//! Prints one wrong response token by token, then a table of Δ by token class, for the wrong
//! responses and the correct ones: the shared prefix, the *departing token* (the first one
//! where the wrong and the correct response differ: the token that decides correctness), the
//! chain after it, the answer digits after it, and the end of sequence.
//!
//! Run: `cargo run --release --example cepo_contrast -- BASE.safetensors TASK [PROBLEMS]`,
//! with BASE the task's base policy: `assets/base/addition-*.safetensors` (shipped) or
//! `$ZOO_CACHE_DIR/base/addition-habit-*.safetensors` (made by `zoo sft --task
//! addition-habit` or the first `zoo train --task addition-habit`).

use anyhow::{Context, Result, bail};
use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::{Policy, Task, TokenMatrix};
use zoo::zoo_models::TinyPolicy;
use zoo::zoo_verifiers::{Arithmetic, Kind};

const CLASSES: [&str; 5] = [
    "shared prefix",
    "departing token",
    "chain after it",
    "answer digits after it",
    "end of sequence",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: cepo_contrast BASE.safetensors (addition | addition-habit) [PROBLEMS]";
    let path = args.get(1).context(usage)?;
    let kind = match args.get(2).map(String::as_str) {
        Some("addition") => Kind::Addition,
        Some("addition-habit") => Kind::CarryHabit,
        _ => bail!("{usage}"),
    };
    let problems: usize = args.get(3).map_or(Ok(200), |s| s.parse())?;
    let policy = TinyPolicy::load(std::path::Path::new(path), &Device::flex().autodiff())?;
    let task = Arithmetic::new(kind);
    let tokenizer = policy.tokenizer();
    let encode = |text: &str| -> Result<Vec<u32>> { Ok(tokenizer.encode_prompt(text)?) };

    // Per response kind (wrong, correct): Δ values by token class, and one example.
    let mut classes: [[Vec<f32>; 5]; 2] = Default::default();
    let mut example: Option<(String, Vec<f32>)> = None;
    let mut count = 0;
    for problem in task.heldout().iter().take(problems) {
        let typical = match kind {
            Kind::CarryHabit => task.habit(problem),
            _ => task.dropped_first_carry(problem),
        };
        let Some((wrong_response, wrong_answer)) = typical else {
            continue; // no carry: no typical error
        };
        count += 1;
        // CEPO's two teachers on the CPU world: the answers in the task's `[h:…]` slot.
        let hinted = |answer: &str| {
            let prompt = task
                .hint_slot(problem, "answer", answer)
                .expect("the arithmetic tasks have an answer slot");
            encode(&prompt)
        };
        let gold = hinted(&problem.answer)?;
        let wrong = hinted(&wrong_answer)?;
        let departure = wrong_response
            .bytes()
            .zip(problem.solution.bytes())
            .position(|(a, b)| a != b)
            // One is a prefix of the other (`=>12` for 122): the end of sequence departs.
            .unwrap_or(wrong_response.len().min(problem.solution.len()));
        for (k, response) in [wrong_response, problem.solution.clone()]
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
            let answer_start = response.rfind("=>").map_or(response.len(), |i| i + 2);
            for (i, d) in delta.iter().enumerate() {
                let class = match i {
                    i if i < departure => 0,
                    i if i == departure => 1,
                    i if i == response.len() => 4,
                    i if i < answer_start => 2,
                    _ => 3,
                };
                classes[k][class].push(*d);
            }
            if k == 0 && example.is_none() {
                example = Some((format!("{}{response}", problem.prompt), delta));
            }
        }
    }
    let (text, delta) = example.context("no held-out problem with a carry")?;
    println!("wrong response `{text}`: Δ per token (gold-hint − wrong-hint log-prob)");
    let response = &text[text.find('=').map_or(0, |i| i + 1)..];
    for (c, d) in response
        .chars()
        .map(|c| c.to_string())
        .chain(["<eos>".into()])
        .zip(delta)
    {
        println!("  {c:>5}  {d:+.3}");
    }
    println!(
        "\n{count} problems with a carry\n\n| response | token class | tokens | mean Δ | mean \\|Δ\\| | share with \\|Δ\\| > 0.5 |\n|---|---|---|---|---|---|"
    );
    for (name, by_class) in ["wrong (typical error)", "correct"].iter().zip(&classes) {
        for (class, values) in CLASSES.iter().zip(by_class) {
            if values.is_empty() {
                continue;
            }
            let n = values.len() as f32;
            println!(
                "| {name} | {class} | {} | {:+.3} | {:.3} | {:.1}% |",
                values.len(),
                values.iter().sum::<f32>() / n,
                values.iter().map(|d| d.abs()).sum::<f32>() / n,
                100.0 * values.iter().filter(|d| d.abs() > 0.5).count() as f32 / n,
            );
        }
    }
    Ok(())
}
