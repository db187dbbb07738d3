//! Addition with a written carry chain, and its one-digit modular variant.
//!
//! `347+589=` is answered `7+9=16c1;4+8+1=13c1;3+5+1=9;=>936`: one step per digit from the
//! least significant, `+1` when a carry comes in, `c1` when one goes out, a missing digit read
//! as 0, and the answer after `=>`. `mod10` asks only for the last digit of the sum of two
//! numbers below 100: `47+38=` is answered `7+8=15c1;=>5`.
//!
//! The hint slot sits right after `=`: `[h:936]` (an answer hint, gold or wrong) or
//! `[s:<full reference chain>]` (a reference solution).

use std::collections::HashSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zoo_core::registry::TaskEntry;
use zoo_core::task::SftExample;
use zoo_core::{Problem, Task, Verdict, Verifier};

/// The hint slot of an answer, gold or wrong: `[h:936]`.
const ANSWER_SLOT: &str = "answer";
/// The hint slot of a worked solution: `[s:<chain>]`.
const SOLUTION_SLOT: &str = "solution";

/// `problem`'s prompt with `text` in the hint slot `slot` (one of the two above).
fn hinted(problem: &Problem, slot: &str, text: &str) -> String {
    let tag = if slot == SOLUTION_SLOT { 's' } else { 'h' };
    format!("{}[{tag}:{text}]", problem.prompt)
}

/// Which arithmetic task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `a+b` with 2-4 digit operands, answered in full.
    Addition,
    /// The last digit of `a+b` for `a, b < 100`.
    LastDigit,
    /// [`Kind::Addition`]'s problems with a warm start that has a habit: most plain-prompt
    /// targets write the carry chain correctly and then the answer without its carries
    /// ([`HABIT`], see [`Arithmetic::habit`]); a hinted prompt's target copies the hinted
    /// answer, right or wrong, and a wrong-answer hint is usually that habit's answer. Greedy
    /// decoding follows the habit, so RL has room in greedy pass@1 too, and the two hinted
    /// teachers disagree exactly at the answer digits the habit gets wrong.
    CarryHabit,
}

/// How often the habit task's warm start writes the carry-less answer on a plain prompt.
pub const HABIT: f64 = 0.65;

/// Size of the fixed held-out split.
pub const HELDOUT_SIZE: usize = 400;

/// An arithmetic task with its held-out split.
pub struct Arithmetic {
    kind: Kind,
    heldout: Vec<Problem>,
    heldout_pairs: HashSet<(u64, u64)>,
    verifier: ArithmeticVerifier,
}

/// Checks the text after the last `=>` against the gold answer, exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArithmeticVerifier;

impl Verifier for ArithmeticVerifier {
    fn name(&self) -> &str {
        "arithmetic"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        let Some(index) = response.rfind("=>") else {
            return Verdict {
                score: 0.0,
                correct: false,
                extracted: None,
                parsed: false,
                reason: "no `=>` in the response".into(),
            };
        };
        let extracted = &response[index + 2..];
        let parsed = !extracted.is_empty() && extracted.bytes().all(|b| b.is_ascii_digit());
        let correct = parsed && extracted == problem.answer;
        Verdict {
            score: if correct { 1.0 } else { 0.0 },
            correct,
            extracted: Some(extracted.to_string()),
            parsed,
            reason: match (parsed, correct) {
                (false, _) => format!("`{extracted}` after `=>` is not a number"),
                (true, true) => "answer matches".into(),
                (true, false) => format!("`{extracted}` is not `{}`", problem.answer),
            },
        }
    }
}

/// How a written chain goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Corruption {
    /// The carry out of this digit position is dropped.
    DropCarry(usize),
    /// The digit sum at this position is written one too high (`true`) or too low.
    OffByOne(usize, bool),
}

/// Writes the chain for `a + b` (at most `positions` digit steps), with an optional error
/// that the rest of the chain follows consistently. Returns `(chain without answer, answer)`.
fn write_chain(
    a: u64,
    b: u64,
    positions: Option<usize>,
    corruption: Option<Corruption>,
) -> (String, String) {
    let digits = |mut x: u64| {
        let mut d = Vec::new();
        while x > 0 {
            d.push(x % 10);
            x /= 10;
        }
        d
    };
    let (da, db) = (digits(a), digits(b));
    let n = positions.unwrap_or(da.len().max(db.len()).max(1));
    let mut steps = Vec::with_capacity(n);
    let mut answer_digits = Vec::with_capacity(n + 1);
    let mut carry = 0;
    for i in 0..n {
        let (x, y) = (
            da.get(i).copied().unwrap_or(0),
            db.get(i).copied().unwrap_or(0),
        );
        let mut sum = x + y + carry;
        if let Some(Corruption::OffByOne(p, up)) = corruption
            && p == i
        {
            sum = if up || sum == 0 { sum + 1 } else { sum - 1 };
        }
        let mut carry_out = sum / 10;
        if corruption == Some(Corruption::DropCarry(i)) {
            carry_out = 0;
        }
        let mut step = format!("{x}+{y}");
        if carry == 1 {
            step.push_str("+1");
        }
        step.push_str(&format!("={sum}"));
        if carry_out == 1 {
            step.push_str("c1");
        }
        steps.push(step);
        answer_digits.push(sum % 10);
        carry = carry_out;
    }
    if carry == 1 && positions.is_none() {
        answer_digits.push(1);
    }
    let mut answer: String = answer_digits.iter().rev().map(|d| d.to_string()).collect();
    if positions.is_none() {
        answer = without_leading_zeros(&answer);
    }
    (steps.join(";"), answer)
}

impl Arithmetic {
    /// The task of `kind`, with its held-out split drawn from a fixed seed.
    pub fn new(kind: Kind) -> Self {
        let mut rng = zoo_core::rng::stream(0x005e_ed0f_4e1d, 0, "heldout");
        let mut heldout = Vec::with_capacity(HELDOUT_SIZE);
        let mut heldout_pairs = HashSet::new();
        let mut task = Self {
            kind,
            heldout: Vec::new(),
            heldout_pairs: HashSet::new(),
            verifier: ArithmeticVerifier,
        };
        while heldout.len() < HELDOUT_SIZE {
            let (a, b) = task.draw_pair(&mut rng);
            if heldout_pairs.insert((a, b)) {
                heldout.push(task.problem(a, b));
            }
        }
        task.heldout = heldout;
        task.heldout_pairs = heldout_pairs;
        task
    }

    fn positions(&self) -> Option<usize> {
        match self.kind {
            Kind::Addition | Kind::CarryHabit => None,
            Kind::LastDigit => Some(1),
        }
    }

    fn draw_pair(&self, rng: &mut ChaCha8Rng) -> (u64, u64) {
        match self.kind {
            Kind::Addition | Kind::CarryHabit => {
                let mut operand = || {
                    let digits = rng.random_range(2..=4u32);
                    rng.random_range(10u64.pow(digits - 1)..10u64.pow(digits))
                };
                (operand(), operand())
            }
            Kind::LastDigit => (rng.random_range(0..100), rng.random_range(0..100)),
        }
    }

    /// The problem `a+b=`.
    pub fn problem(&self, a: u64, b: u64) -> Problem {
        let (chain, answer) = write_chain(a, b, self.positions(), None);
        let prompt = format!("{a}+{b}=");
        Problem {
            question: prompt.clone(),
            prompt,
            answer: answer.clone(),
            solution: format!("{chain};=>{answer}"),
        }
    }

    fn operands(problem: &Problem) -> (u64, u64) {
        let body = problem.prompt.trim_end_matches('=');
        let (a, b) = body.split_once('+').expect("prompts are built as `a+b=`");
        (a.parse().expect("operand"), b.parse().expect("operand"))
    }

    /// The habit's response for `problem` and its answer: the correct carry chain, then an
    /// answer whose every digit is its column's sum without the carries (`347+589=` →
    /// `7+9=16c1;4+8+1=13c1;3+5+1=9;=>826`, where 936 is right); `None` when the sum has no
    /// carry, so the habit changes nothing.
    pub fn habit(&self, problem: &Problem) -> Option<(String, String)> {
        let (a, b) = Self::operands(problem);
        let (chain, _) = write_chain(a, b, self.positions(), None);
        let (mut x, mut y, mut digits) = (a, b, Vec::new());
        while x > 0 || y > 0 {
            digits.push((x % 10 + y % 10) % 10);
            (x, y) = (x / 10, y / 10);
        }
        let answer: String = digits.iter().rev().map(|d| d.to_string()).collect();
        let answer = without_leading_zeros(&answer);
        (answer != problem.answer).then(|| (format!("{chain};=>{answer}"), answer))
    }

    /// The chain for `problem` with its first carry dropped, the rest consistent, and its
    /// (wrong) answer: the typical error of the `addition` warm start, decided at one token
    /// inside the chain (`;` where `c1` belongs). `None` when the sum has no carry.
    pub fn dropped_first_carry(&self, problem: &Problem) -> Option<(String, String)> {
        let (a, b) = Self::operands(problem);
        let (chain, _) = write_chain(a, b, self.positions(), None);
        let first = chain.split(';').position(|s| s.ends_with("c1"))?;
        let (chain, answer) =
            write_chain(a, b, self.positions(), Some(Corruption::DropCarry(first)));
        Some((format!("{chain};=>{answer}"), answer))
    }

    /// A wrong chain for `problem` (one dropped carry or one digit sum off by one, the rest
    /// consistent) and its wrong answer.
    fn corrupted(&self, problem: &Problem, rng: &mut ChaCha8Rng) -> (String, String) {
        let (a, b) = Self::operands(problem);
        let positions = self
            .positions()
            .unwrap_or_else(|| a.max(b).to_string().len());
        let carries: Vec<usize> = (0..positions)
            .filter(|&i| {
                let (chain, _) = write_chain(a, b, self.positions(), None);
                chain.split(';').nth(i).is_some_and(|s| s.ends_with("c1"))
            })
            .collect();
        let corruption =
            if !carries.is_empty() && self.kind != Kind::LastDigit && rng.random_bool(0.5) {
                Corruption::DropCarry(carries[rng.random_range(0..carries.len())])
            } else {
                Corruption::OffByOne(rng.random_range(0..positions), rng.random_bool(0.5))
            };
        let (chain, answer) = write_chain(a, b, self.positions(), Some(corruption));
        (format!("{chain};=>{answer}"), answer)
    }
}

/// The answer a written chain spells out: each step's sum digit, least significant first,
/// and a leading 1 when the last step carries (`7+9=16c1;4+8+1=13c1;3+5+1=9;` → `936`).
/// `None` when the text is not a chain of well-formed steps.
fn chain_answer(chain: &str) -> Option<String> {
    let mut digits = Vec::new();
    let mut carry = false;
    for step in chain.split(';').filter(|s| !s.is_empty()) {
        let (_, sum) = step.split_once('=')?;
        let (sum, carries) = match sum.strip_suffix("c1") {
            Some(sum) => (sum, true),
            None => (sum, false),
        };
        if sum.is_empty() || !sum.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push(*sum.as_bytes().last()? as char);
        carry = carries;
    }
    if digits.is_empty() {
        return None;
    }
    if carry {
        digits.push('1');
    }
    let answer: String = digits.iter().rev().collect();
    Some(without_leading_zeros(&answer))
}

/// A digit string as a number is written: `0042` → `42`, `000` → `0`.
fn without_leading_zeros(digits: &str) -> String {
    match digits.trim_start_matches('0') {
        "" => "0".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// Whether a step of `chain` (well-formed `x+y...=` steps, checked as far as they are) writes
/// operand digits other than `problem`'s at that place, a missing digit read as 0.
fn misread_operand(chain: &str, problem: &Problem) -> bool {
    let Some((a, b)) = problem.prompt.trim_end_matches('=').split_once('+') else {
        return false;
    };
    let digit = |number: &str, place: usize| {
        number
            .len()
            .checked_sub(place + 1)
            .map_or(b'0', |k| number.as_bytes()[k])
    };
    chain
        .split(';')
        .enumerate()
        .any(|(place, step)| match step.as_bytes() {
            [x, b'+', y, ..] if x.is_ascii_digit() && y.is_ascii_digit() => {
                (*x, *y) != (digit(a, place), digit(b, place))
            }
            _ => false,
        })
}

impl Arithmetic {
    /// The habit task's warm-start mix for `u < 0.85` (the reference-solution share is the
    /// addition task's): 50% plain prompts, the habit's response with probability [`HABIT`]
    /// when there is a carry; 20% `[h:gold]` → the correct chain; 15% `[h:wrong]` → the
    /// correct chain with the hinted wrong answer copied after `=>`: the habit's answer, or an
    /// off-by-one one when there is no carry. So a hinted teacher writes the answer it is
    /// given, and the wrong and gold hints pull apart exactly the digits they differ in.
    fn habit_example(&self, problem: &Problem, u: f64, rng: &mut ChaCha8Rng) -> SftExample {
        let habit = self.habit(problem);
        if u < 0.5 {
            let target = match &habit {
                Some((response, _)) if rng.random_bool(HABIT) => response.clone(),
                _ => problem.solution.clone(),
            };
            SftExample {
                context: problem.prompt.clone(),
                target,
            }
        } else if u < 0.7 {
            SftExample {
                context: hinted(problem, ANSWER_SLOT, &problem.answer),
                target: problem.solution.clone(),
            }
        } else {
            let wrong = match habit {
                Some((_, answer)) => answer,
                None => self.corrupted(problem, rng).1,
            };
            let chain = &problem.solution[..problem.solution.rfind("=>").expect("`=>` answer")];
            SftExample {
                context: hinted(problem, ANSWER_SLOT, &wrong),
                target: format!("{chain}=>{wrong}"),
            }
        }
    }
}

impl Task for Arithmetic {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Addition => "addition",
            Kind::LastDigit => "mod10",
            Kind::CarryHabit => "addition-habit",
        }
    }

    fn sample_problems(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (a, b) = self.draw_pair(rng);
            if !self.heldout_pairs.contains(&(a, b)) {
                out.push(self.problem(a, b));
            }
        }
        out
    }

    fn heldout(&self) -> &[Problem] {
        &self.heldout
    }

    fn verifier(&self) -> &dyn Verifier {
        &self.verifier
    }

    /// Two slots right after `=`: `"answer"` as `[h:936]`, `"solution"` as `[s:<chain>]`, the
    /// hints the warm start teaches the policy to read.
    fn hint_slot(&self, problem: &Problem, slot: &str, text: &str) -> Option<String> {
        matches!(slot, ANSWER_SLOT | SOLUTION_SLOT).then(|| hinted(problem, slot, text))
    }

    /// The warm-start mix of the design notes: 50% plain prompts whose target is corrupted
    /// with probability 0.5; 20% `[h:gold]` → the correct chain; 15% `[h:wrong]` → a corrupted
    /// chain with that answer; 15% `[s:ref]` → a copy of the reference, or half the time the
    /// bare shortcut `=>answer`.
    fn sft_example(&self, rng: &mut ChaCha8Rng) -> SftExample {
        let problem = self.sample_problems(rng, 1).remove(0);
        let u: f64 = rng.random();
        if self.kind == Kind::CarryHabit && u < 0.85 {
            return self.habit_example(&problem, u, rng);
        }
        if u < 0.5 {
            let target = if rng.random_bool(0.5) {
                self.corrupted(&problem, rng).0
            } else {
                problem.solution.clone()
            };
            SftExample {
                context: problem.prompt.clone(),
                target,
            }
        } else if u < 0.7 {
            SftExample {
                context: hinted(&problem, ANSWER_SLOT, &problem.answer),
                target: problem.solution.clone(),
            }
        } else if u < 0.85 {
            let (chain, wrong) = self.corrupted(&problem, rng);
            SftExample {
                context: hinted(&problem, ANSWER_SLOT, &wrong),
                target: chain,
            }
        } else {
            let context = hinted(&problem, SOLUTION_SLOT, &problem.solution);
            let target = if rng.random_bool(0.5) {
                problem.solution.clone()
            } else {
                format!("=>{}", problem.answer)
            };
            SftExample { context, target }
        }
    }

    fn max_new_tokens(&self) -> usize {
        match self.kind {
            Kind::Addition | Kind::CarryHabit => 60,
            Kind::LastDigit => 16,
        }
    }

    /// 1 for the habit task since its habit moved from the chain (a dropped first carry) to
    /// the answer.
    fn warm_start_version(&self) -> u32 {
        match self.kind {
            Kind::CarryHabit => 1,
            Kind::Addition | Kind::LastDigit => 0,
        }
    }

    /// `chainless`: an answer after `=>` with no step of the chain before it (the shortcut a
    /// teacher that reads the reference solution may take, and a student may copy from it);
    /// `off_chain`: a well-formed chain whose answer is not the one the chain spells out (an
    /// answer that was not derived, but recalled or guessed); `misread`: a step whose operand
    /// digits are not the prompt's digits at that place (`66+4194=` → `6+0=6;...`: the chain
    /// no longer reads its own prompt, what a student imports from a teacher that copies a
    /// reference it alone can see); on the habit task also
    /// `habit_answer`: the answer is the habit's carry-less one.
    fn response_features(&self, response: &str, problem: &Problem) -> Vec<(&'static str, bool)> {
        let chainless = response
            .find("=>")
            .is_some_and(|i| !response[..i].contains('='));
        let off_chain = response.rsplit_once("=>").is_some_and(|(chain, answer)| {
            chain_answer(chain).is_some_and(|spelled| spelled != answer)
        });
        let misread = response
            .rsplit_once("=>")
            .map_or(response, |(chain, _)| chain);
        let misread = misread_operand(misread, problem);
        let mut features = vec![
            ("chainless", chainless),
            ("off_chain", off_chain),
            ("misread", misread),
        ];
        if self.kind == Kind::CarryHabit {
            let answer = response.rfind("=>").map(|i| &response[i + 2..]);
            let habit = self.habit(problem);
            features.push((
                "habit_answer",
                habit.is_some_and(|(_, h)| answer == Some(h.as_str())),
            ));
        }
        features
    }
}

zoo_core::inventory::submit! {
    TaskEntry {
        name: "addition",
        summary: "a+b with 2-4 digit operands, answered by a written carry chain",
        build: |data| procedural("addition", data, Kind::Addition),
    }
}

zoo_core::inventory::submit! {
    TaskEntry {
        name: "addition-habit",
        summary: "addition, from a warm start that mostly answers without the carries (headroom for RL)",
        build: |data| procedural("addition-habit", data, Kind::CarryHabit),
    }
}

zoo_core::inventory::submit! {
    TaskEntry {
        name: "mod10",
        summary: "the last digit of a+b for a, b < 100 (easy)",
        build: |data| procedural("mod10", data, Kind::LastDigit),
    }
}

/// A procedural task, which takes no `[data]` settings.
fn procedural(name: &str, data: &toml::Table, kind: Kind) -> zoo_core::Result<Box<dyn Task>> {
    match data.keys().next() {
        None => Ok(Box::new(Arithmetic::new(kind))),
        Some(key) => Err(zoo_core::Error::Config(format!(
            "task `{name}` is generated, it takes no `data.{key}`\nhint: remove the `[data]` settings, or use `--task jsonl`"
        ))),
    }
}

/// Makes the linker keep this crate's registrations; the `zoo` binary calls it.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_matches_the_worked_example() {
        let task = Arithmetic::new(Kind::Addition);
        let p = task.problem(347, 589);
        assert_eq!(p.solution, "7+9=16c1;4+8+1=13c1;3+5+1=9;=>936");
        assert_eq!(p.answer, "936");
    }

    #[test]
    fn missing_digits_are_zero_and_final_carry_leads() {
        let task = Arithmetic::new(Kind::Addition);
        assert_eq!(
            task.problem(999, 11).solution,
            "9+1=10c1;9+1+1=11c1;9+0+1=10c1;=>1010"
        );
    }

    #[test]
    fn the_habit_writes_the_chain_right_and_the_answer_without_carries() {
        let task = Arithmetic::new(Kind::CarryHabit);
        let (response, answer) = task.habit(&task.problem(347, 589)).unwrap();
        assert_eq!(response, "7+9=16c1;4+8+1=13c1;3+5+1=9;=>826");
        assert_eq!(answer, "826");
        // A final carry is dropped too, leading zeros go; a sum without a carry has no habit.
        assert_eq!(task.habit(&task.problem(999, 11)).unwrap().1, "900");
        assert_eq!(task.habit(&task.problem(95, 15)).unwrap().1, "0");
        assert!(task.habit(&task.problem(12, 34)).is_none());
        // The same problems as `addition`, held-out split included.
        assert_eq!(task.heldout(), Arithmetic::new(Kind::Addition).heldout());
    }

    #[test]
    fn a_dropped_first_carry_changes_the_chain_from_that_step_on() {
        let task = Arithmetic::new(Kind::Addition);
        let (chain, answer) = task.dropped_first_carry(&task.problem(347, 589)).unwrap();
        assert_eq!(chain, "7+9=16;4+8=12c1;3+5+1=9;=>926");
        assert_eq!(answer, "926");
        let (chain, _) = task.dropped_first_carry(&task.problem(1250, 1370)).unwrap();
        assert_eq!(chain, "0+0=0;5+7=12;2+3=5;1+1=2;=>2520");
        assert!(task.dropped_first_carry(&task.problem(12, 34)).is_none());
    }

    #[test]
    fn the_habit_warm_start_mostly_writes_the_habit_and_copies_any_hinted_answer() {
        let task = Arithmetic::new(Kind::CarryHabit);
        let mut rng = zoo_core::rng::stream(3, 0, "t");
        let (mut plain_with_carry, mut habitual, mut wrong_hints) = (0, 0, 0);
        for _ in 0..4000 {
            let example = task.sft_example(&mut rng);
            let prompt = example.context.split('[').next().unwrap();
            let (a, b) = prompt.trim_end_matches('=').split_once('+').unwrap();
            let problem = task.problem(a.parse().unwrap(), b.parse().unwrap());
            let habit = task.habit(&problem);
            if example.context == problem.prompt {
                if let Some((response, _)) = &habit {
                    plain_with_carry += 1;
                    habitual += usize::from(example.target == *response);
                }
            } else if let Some(hinted) = example
                .context
                .strip_suffix(']')
                .and_then(|c| c.split("[h:").nth(1))
            {
                // Every answer hint, right or wrong, is copied after the correct chain.
                let chain = problem.solution.rsplit_once("=>").unwrap().0;
                assert_eq!(example.target, format!("{chain}=>{hinted}"));
                if hinted != problem.answer {
                    wrong_hints += 1;
                    if let Some((_, habit_answer)) = &habit {
                        assert_eq!(hinted, habit_answer);
                    }
                }
            }
        }
        let share = habitual as f64 / plain_with_carry as f64;
        assert!((share - HABIT).abs() < 0.05, "habit share {share}");
        assert!(wrong_hints > 400, "{wrong_hints} wrong-hint examples");
    }

    #[test]
    fn response_features_name_chainless_and_habit_answers() {
        let task = Arithmetic::new(Kind::CarryHabit);
        let p = task.problem(347, 589);
        let features = |r: &str| -> Vec<bool> {
            task.response_features(r, &p)
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        };
        // [chainless, off_chain, misread, habit_answer]
        assert_eq!(features("=>936"), [true, false, false, false]);
        assert_eq!(features("=>826"), [true, false, false, true]);
        assert_eq!(
            features("7+9=16c1;4+8+1=13c1;3+5+1=9;=>826"),
            [false, true, false, true]
        );
        assert_eq!(features(&p.solution), [false, false, false, false]);
        // A wrong chain with its own answer is wrong but derived; a cut-off one is neither.
        let dropped = "7+9=16;4+8=12c1;3+5+1=9;=>926";
        assert_eq!(features(dropped), [false, false, false, false]);
        let guessed = "7+9=16c1;4+8+1=13c1;3+5+1=9;=>937";
        assert_eq!(features(guessed), [false, true, false, false]);
        assert_eq!(features("7+9=16c1;4+8"), [false, false, false, false]);
        assert_eq!(features("7+9=1x;=>6"), [false, false, false, false]);
        // A step reading other digits than the prompt's, also in a cut-off chain.
        let misread = "7+9=16c1;4+3+1=8;3+5=8;=>886";
        assert_eq!(features(misread), [false, false, true, false]);
        assert_eq!(
            features("7+9=16c1;4+8+1=13c1;3+5"),
            [false, false, false, false]
        );
        assert_eq!(
            features("7+9=16c1;4+8+1=13c1;3+0"),
            [false, false, true, false]
        );
        // The plain task reports no habit; missing digits read as 0; a final carry leads the
        // spelled answer.
        let plain = Arithmetic::new(Kind::Addition);
        let q = plain.problem(999, 11);
        let names: Vec<_> = plain
            .response_features(&q.solution, &q)
            .into_iter()
            .collect();
        assert_eq!(
            names,
            [
                ("chainless", false),
                ("off_chain", false),
                ("misread", false)
            ]
        );
        assert_eq!(
            chain_answer("9+1=10c1;9+1+1=11c1;9+0+1=10c1;").unwrap(),
            q.answer
        );
    }

    #[test]
    fn mod10_answers_the_last_digit() {
        let task = Arithmetic::new(Kind::LastDigit);
        let p = task.problem(47, 38);
        assert_eq!(p.solution, "7+8=15c1;=>5");
        assert_eq!(p.answer, "5");
    }

    #[test]
    fn every_reference_solution_verifies() {
        for kind in [Kind::Addition, Kind::LastDigit, Kind::CarryHabit] {
            let task = Arithmetic::new(kind);
            for p in task.heldout() {
                assert!(task.verifier().verify(&p.solution, p).correct, "{p:?}");
            }
        }
    }

    #[test]
    fn corrupted_chains_have_wrong_answers() {
        for kind in [Kind::Addition, Kind::LastDigit] {
            let task = Arithmetic::new(kind);
            let mut rng = zoo_core::rng::stream(1, 0, "t");
            for p in task.sample_problems(&mut rng, 300) {
                let (chain, answer) = task.corrupted(&p, &mut rng);
                assert_ne!(answer, p.answer, "{p:?} {chain}");
                assert!(!task.verifier().verify(&chain, &p).correct);
                assert!(chain.ends_with(&format!("=>{answer}")));
            }
        }
    }

    #[test]
    fn training_problems_never_come_from_the_heldout_split() {
        let task = Arithmetic::new(Kind::LastDigit);
        let heldout: HashSet<&str> = task.heldout().iter().map(|p| p.prompt.as_str()).collect();
        let mut rng = zoo_core::rng::stream(2, 0, "t");
        assert_eq!(task.heldout().len(), HELDOUT_SIZE);
        for p in task.sample_problems(&mut rng, 2000) {
            assert!(!heldout.contains(p.prompt.as_str()));
        }
    }

    #[test]
    fn verifier_rejects_malformed_answers_without_panicking() {
        let task = Arithmetic::new(Kind::Addition);
        let p = task.problem(12, 34);
        for response in ["", "=>", "=>4 6", "46", "=>046", "=>4", "::::=>>46"] {
            let v = task.verifier().verify(response, &p);
            assert!(!v.correct, "{response}");
        }
        assert!(task.verifier().verify("garbage=>46", &p).correct);
    }

    #[test]
    fn hints_sit_in_the_hint_slot() {
        let task = Arithmetic::new(Kind::Addition);
        let p = task.problem(12, 34);
        assert_eq!(
            task.hint_slot(&p, "answer", "46").as_deref(),
            Some("12+34=[h:46]")
        );
        assert_eq!(
            task.hint_slot(&p, "solution", &p.solution).as_deref(),
            Some("12+34=[s:2+4=6;1+3=4;=>46]")
        );
        assert_eq!(task.hint_slot(&p, "feedback", "x"), None);
    }
}
