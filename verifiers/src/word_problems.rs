//! Arithmetic word problems for the first comparison on a real language model
//! (`examples/data/words-{train,eval}.jsonl`, written by `cargo run --example
//! make_word_problems`).
//!
//! Four kinds, a quarter each: additions (`add`), subtractions with a positive result (`sub`),
//! small products (`mul`, 2 to 5 times 2 to 10) and two-step problems (`two-step`: add then
//! subtract, a product then a sum, a product then a difference). Every row carries its gold
//! `answer` and a short worked `solution` ending in `The answer is \boxed{N}.`, which the
//! teachers of OPSD, SDPO and RLSD read; the student never sees it.
//!
//! The files are a function of the seed alone ([`generate`]): the held-out problems are drawn
//! first, the training problems after them, and no problem text appears twice in either file
//! or in both. A unit test regenerates both files and compares them byte for byte, and checks
//! every gold answer and solution with the `math` verifier.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The seed of the committed files.
pub const SEED: u64 = 27;
/// Problems in the committed training file.
pub const TRAIN: usize = 2000;
/// Problems in the committed held-out file.
pub const EVAL: usize = 300;

/// One JSONL row, as `--task jsonl` reads it (`kind` and `id` are extra fields it ignores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WordProblem {
    /// `words-<split>-<index>`.
    pub id: String,
    /// `add`, `sub`, `mul` or `two-step`.
    pub kind: &'static str,
    /// The question.
    pub problem: String,
    /// The gold answer: a non-negative integer.
    pub answer: String,
    /// A short worked solution ending in `The answer is \boxed{answer}.`
    pub solution: String,
}

/// `(name, pronoun)` pairs.
const PEOPLE: [(&str, &str); 12] = [
    ("Mia", "She"),
    ("Sam", "He"),
    ("Ava", "She"),
    ("Leo", "He"),
    ("Noah", "He"),
    ("Emma", "She"),
    ("Liam", "He"),
    ("Zoe", "She"),
    ("Omar", "He"),
    ("Priya", "She"),
    ("Ken", "He"),
    ("Lena", "She"),
];

/// Things people collect and buy (plural).
const ITEMS: [&str; 10] = [
    "apples", "marbles", "stickers", "pencils", "books", "cards", "shells", "coins", "stamps",
    "beads",
];

/// The held-out and training problems for `seed`: `(heldout, train)`.
pub fn generate(seed: u64, heldout: usize, train: usize) -> (Vec<WordProblem>, Vec<WordProblem>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let heldout = draw(&mut rng, &mut seen, "eval", heldout);
    let train = draw(&mut rng, &mut seen, "train", train);
    (heldout, train)
}

/// The rows as JSONL text, one object per line.
pub fn to_jsonl(rows: &[WordProblem]) -> String {
    rows.iter()
        .map(|row| serde_json::to_string(row).expect("a word problem serializes") + "\n")
        .collect()
}

fn draw(
    rng: &mut ChaCha8Rng,
    seen: &mut HashSet<String>,
    split: &str,
    n: usize,
) -> Vec<WordProblem> {
    let mut rows = Vec::with_capacity(n);
    let mut draws = 0usize;
    while rows.len() < n {
        draws += 1;
        assert!(
            draws <= 100 * n.max(10),
            "cannot draw {n} distinct word problems: ask for fewer (each kind has a few thousand)"
        );
        // The kinds in turn, so each split holds a quarter of each.
        let (kind, problem, answer, solution) = match rows.len() % 4 {
            0 => addition(rng),
            1 => subtraction(rng),
            2 => product(rng),
            _ => two_step(rng),
        };
        if !seen.insert(problem.clone()) {
            continue;
        }
        rows.push(WordProblem {
            id: format!("words-{split}-{:04}", rows.len()),
            kind,
            problem,
            answer: answer.to_string(),
            solution: format!("{solution} The answer is \\boxed{{{answer}}}."),
        });
    }
    rows
}

type Drawn = (&'static str, String, u32, String);

fn person(rng: &mut ChaCha8Rng) -> (&'static str, &'static str) {
    PEOPLE[rng.random_range(0..PEOPLE.len())]
}

fn item(rng: &mut ChaCha8Rng) -> &'static str {
    ITEMS[rng.random_range(0..ITEMS.len())]
}

fn addition(rng: &mut ChaCha8Rng) -> Drawn {
    let (a, b) = (rng.random_range(5..=30u32), rng.random_range(2..=20u32));
    let (name, they) = person(rng);
    let items = item(rng);
    let sum = a + b;
    let problem = match rng.random_range(0..3) {
        0 => format!(
            "{name} has {a} {items}. {they} buys {b} more. How many {items} does {name} have now?"
        ),
        1 => format!(
            "A box holds {a} {items}. {name} puts {b} more {items} in it. How many {items} are in the box now?"
        ),
        _ => format!(
            "{name} read {a} pages on Monday and {b} pages on Tuesday. How many pages did {name} read in all?"
        ),
    };
    ("add", problem, sum, format!("{a} + {b} = {sum}."))
}

fn subtraction(rng: &mut ChaCha8Rng) -> Drawn {
    let a = rng.random_range(10..=40u32);
    let b = rng.random_range(2..=a - 2);
    let (name, _) = person(rng);
    let items = item(rng);
    let left = a - b;
    let problem = match rng.random_range(0..3) {
        0 => format!(
            "{name} had {a} {items} and gave {b} of them to a friend. How many {items} does {name} have left?"
        ),
        1 => format!(
            "There were {a} people on a bus. At the next stop, {b} people got off. How many people are still on the bus?"
        ),
        _ => format!(
            "A shop had {a} {items}. It sold {b} of them. How many {items} does the shop have left?"
        ),
    };
    ("sub", problem, left, format!("{a} - {b} = {left}."))
}

fn product(rng: &mut ChaCha8Rng) -> Drawn {
    let (a, b) = (rng.random_range(2..=5u32), rng.random_range(2..=10u32));
    let (name, _) = person(rng);
    let items = item(rng);
    let total = a * b;
    let problem = match rng.random_range(0..3) {
        0 => format!(
            "There are {a} boxes with {b} {items} in each box. How many {items} are there in all?"
        ),
        1 => format!(
            "{name} buys {a} packs of {items}. Each pack has {b} {items}. How many {items} does {name} buy?"
        ),
        _ => format!(
            "A garden has {a} rows of plants with {b} plants in each row. How many plants are in the garden?"
        ),
    };
    ("mul", problem, total, format!("{a} * {b} = {total}."))
}

fn two_step(rng: &mut ChaCha8Rng) -> Drawn {
    let (name, they) = person(rng);
    let items = item(rng);
    match rng.random_range(0..3) {
        0 => {
            let (a, b) = (rng.random_range(5..=20u32), rng.random_range(2..=15u32));
            let c = rng.random_range(2..=a + b - 2);
            let (mid, end) = (a + b, a + b - c);
            (
                "two-step",
                format!(
                    "{name} had {a} {items}, bought {b} more, and then gave away {c}. How many {items} does {name} have now?"
                ),
                end,
                format!("{a} + {b} = {mid}. {mid} - {c} = {end}."),
            )
        }
        1 => {
            let (a, b) = (rng.random_range(2..=4u32), rng.random_range(2..=6u32));
            let c = rng.random_range(2..=20u32);
            let (mid, end) = (a * b, a * b + c);
            (
                "two-step",
                format!(
                    "{name} has {c} {items}. {they} buys {a} bags with {b} {items} in each bag. How many {items} does {name} have now?"
                ),
                end,
                format!("{a} * {b} = {mid}. {c} + {mid} = {end}."),
            )
        }
        _ => {
            let (a, b) = (rng.random_range(2..=4u32), rng.random_range(2..=6u32));
            let c = rng.random_range(1..a * b);
            let (mid, end) = (a * b, a * b - c);
            (
                "two-step",
                format!(
                    "{name} bakes {a} trays of cookies with {b} cookies on each tray and gives away {c} cookies. How many cookies are left?"
                ),
                end,
                format!("{a} * {b} = {mid}. {mid} - {c} = {end}."),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MathVerifier;
    use zoo_core::{Problem, Verifier};

    const TRAIN_FILE: &str = include_str!("../../examples/data/words-train.jsonl");
    const EVAL_FILE: &str = include_str!("../../examples/data/words-eval.jsonl");

    #[test]
    fn committed_files_are_the_generator_output_for_their_seed() {
        let (heldout, train) = generate(SEED, EVAL, TRAIN);
        assert_eq!(heldout.len(), EVAL);
        assert_eq!(train.len(), TRAIN);
        assert!(
            to_jsonl(&heldout) == EVAL_FILE && to_jsonl(&train) == TRAIN_FILE,
            "examples/data/words-*.jsonl differ from the generator's output: rerun \
             `cargo run --example make_word_problems` and review the change"
        );
        // A second draw from the same seed is the same; another seed is not.
        assert_eq!(generate(SEED, EVAL, TRAIN), (heldout.clone(), train));
        assert_ne!(generate(SEED + 1, EVAL, 0).0, heldout);
    }

    #[test]
    fn every_gold_answer_and_worked_solution_passes_the_math_verifier() {
        let (heldout, train) = generate(SEED, EVAL, TRAIN);
        let verifier = MathVerifier::default();
        let mut texts = HashSet::new();
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for row in heldout.iter().chain(&train) {
            assert!(texts.insert(row.problem.clone()), "{} twice", row.problem);
            *kinds.entry(row.kind).or_default() += 1;
            let problem = Problem {
                prompt: row.problem.clone(),
                question: row.problem.clone(),
                answer: row.answer.clone(),
                solution: row.solution.clone(),
            };
            let answer: u32 = row.answer.parse().expect("a non-negative integer");
            for response in [
                row.solution.clone(),
                format!("\\boxed{{{answer}}}"),
                answer.to_string(),
            ] {
                let verdict = verifier.verify(&response, &problem);
                assert!(verdict.correct, "{}: {response:?} rejected", row.id);
            }
            let wrong = verifier.verify(&format!("\\boxed{{{}}}", answer + 1), &problem);
            assert!(!wrong.correct, "{}: a wrong answer accepted", row.id);
            // The worked solution's arithmetic is right, step by step.
            for step in row.solution.split(". ").filter(|s| s.contains('=')) {
                let (lhs, rhs) = step.split_once(" = ").expect("`a op b = c`");
                let parts: Vec<&str> = lhs.split(' ').collect();
                let (a, b): (u32, u32) = (parts[0].parse().unwrap(), parts[2].parse().unwrap());
                let value = match parts[1] {
                    "+" => a + b,
                    "-" => a - b,
                    "*" => a * b,
                    op => panic!("unknown operator {op}"),
                };
                assert_eq!(rhs.trim_end_matches('.').parse::<u32>().unwrap(), value);
            }
        }
        assert_eq!(kinds.len(), 4);
        assert!(
            kinds.values().all(|&n| n == (EVAL + TRAIN) / 4),
            "{kinds:?}"
        );
    }
}
