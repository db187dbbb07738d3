//! Toy bandit environments as tasks, for the tabular policy of `zoo_models::tabular`.
//!
//! Arm bandits ([`Arms`]: E1 `k-armed`, E2 `two-arm`, the `difficulty` spectrum): a response is
//! one arm, rewarded 1 iff it is correct. The leakage toy E4 ([`Leakage`], and its
//! memorization variant): reason, or guess an answer the student cannot see.
//!
//! Each environment gives the tabular policy's rows (`rows`), its vocabulary, and exact
//! expected rewards under a policy's distributions, next to the sampled ones.

use rand_chacha::ChaCha8Rng;
use zoo_core::task::SftExample;
use zoo_core::{Problem, Task, Verdict, Verifier};

/// Rewards the first action of a response by membership in the gold set (`"0 2"`: arms 0
/// and 2 are correct).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArmVerifier;

impl Verifier for ArmVerifier {
    fn name(&self) -> &str {
        "arm"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        let arm = response.split_whitespace().next().map(str::to_string);
        let correct = arm
            .as_deref()
            .is_some_and(|a| problem.answer.split_whitespace().any(|c| c == a));
        Verdict {
            score: if correct { 1.0 } else { 0.0 },
            correct,
            parsed: arm.is_some(),
            reason: match &arm {
                Some(a) => format!("arm {a} against correct arms {}", problem.answer),
                None => "no arm".into(),
            },
            extracted: arm,
        }
    }
}

/// One question of an arm bandit: its arms, the correct ones, and the initial logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Initial logit of each arm.
    pub logits: Vec<f32>,
    /// The rewarded arms.
    pub correct: Vec<u32>,
}

/// Arm bandits with one or more questions, each a softmax over its arms: E1 (`k-armed`), E2
/// (`two-arm`) and the difficulty spectrum (`difficulty`, DisCO's difficulty bias: questions
/// whose initial success probability ranges from 0.05 to 0.95).
#[derive(Debug, Clone)]
pub struct Arms {
    name: &'static str,
    /// The questions.
    pub questions: Vec<Question>,
    problems: Vec<Problem>,
}

/// Question `q` is number `ARM_QUESTION + q` (arms are numbers `0..K`).
const ARM_QUESTION: u32 = 50;

impl Arms {
    /// Arm bandits named `name`.
    pub fn new(name: &'static str, questions: Vec<Question>) -> Self {
        let problems = questions
            .iter()
            .enumerate()
            .map(|(q, question)| Problem {
                prompt: (ARM_QUESTION + q as u32).to_string(),
                question: (ARM_QUESTION + q as u32).to_string(),
                answer: question
                    .correct
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                solution: question
                    .correct
                    .first()
                    .map_or(String::new(), ToString::to_string),
            })
            .collect();
        Self {
            name,
            questions,
            problems,
        }
    }

    /// E1: six arms, arms 0 and 1 correct, uneven initial logits (p = 0.21).
    pub fn k_armed() -> Self {
        Self::new(
            "k-armed",
            vec![Question {
                logits: vec![-0.5, -1.0, 0.3, 0.0, 0.5, -0.2],
                correct: vec![0, 1],
            }],
        )
    }

    /// E2: logits (z, 0) with arm 0 correct, p = sigmoid(z) = 0.2.
    pub fn two_arm() -> Self {
        Self::new(
            "two-arm",
            vec![Question {
                logits: vec![(0.2f32 / 0.8).ln(), 0.0],
                correct: vec![0],
            }],
        )
    }

    /// E3 as an environment: a two-arm question whose correct arm starts rare (p0 = 0.01); run
    /// with many updates per rollout batch (`ℓ^old` frozen), the clip range decides how far it
    /// can rise per batch.
    pub fn single_token() -> Self {
        Self::new(
            "single-token",
            vec![Question {
                logits: vec![(0.01f32 / 0.99).ln(), 0.0],
                correct: vec![0],
            }],
        )
    }

    /// Five two-arm questions with initial success probability 0.05, 0.2, 0.5, 0.8, 0.95.
    pub fn difficulty() -> Self {
        let questions = [0.05f32, 0.2, 0.5, 0.8, 0.95]
            .iter()
            .map(|&p| Question {
                logits: vec![(p / (1.0 - p)).ln(), 0.0],
                correct: vec![0],
            })
            .collect();
        Self::new("difficulty", questions)
    }

    /// Vocabulary size of the tabular policy.
    pub fn vocab(&self) -> usize {
        token(ARM_QUESTION + self.questions.len() as u32) as usize + 1
    }

    fn context(q: usize) -> Vec<u32> {
        vec![1, token(ARM_QUESTION + q as u32)]
    }

    /// Tabular rows: each question's arms, and a hinted context per question and arm (the
    /// teacher contexts of CEPO, RLSD, OPSD, SDPO) starting from the same logits.
    pub fn rows(&self) -> Vec<(Vec<Vec<u32>>, Vec<f32>)> {
        let vocab = self.vocab();
        let mut rows = Vec::new();
        for (q, question) in self.questions.iter().enumerate() {
            let entries: Vec<(u32, f32)> = (0..question.logits.len() as u32)
                .zip(question.logits.iter().copied())
                .collect();
            let logits = logits_over(vocab, &entries);
            rows.push((vec![Self::context(q)], logits.clone()));
            for a in 0..question.logits.len() as u32 {
                let mut hinted = Self::context(q);
                hinted.push(token(a));
                rows.push((vec![hinted], logits.clone()));
            }
        }
        rows
    }

    /// The exact probability of a correct arm per question under `distribution`.
    pub fn success(&self, distribution: &dyn Fn(&[u32]) -> Option<Vec<f64>>) -> Vec<f64> {
        self.questions
            .iter()
            .enumerate()
            .map(|(q, question)| {
                distribution(&Self::context(q)).map_or(0.0, |p| {
                    question.correct.iter().map(|&a| p[token(a) as usize]).sum()
                })
            })
            .collect()
    }
}

impl Task for Arms {
    fn name(&self) -> &str {
        self.name
    }

    fn sample_problems(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem> {
        use rand::Rng;
        (0..n)
            .map(|_| self.problems[rng.random_range(0..self.problems.len())].clone())
            .collect()
    }

    fn heldout(&self) -> &[Problem] {
        &self.problems
    }

    fn verifier(&self) -> &dyn Verifier {
        &ArmVerifier
    }

    /// Every slot is one more token after the question: the hinted arm (the first number of
    /// `text`).
    fn hint_slot(&self, problem: &Problem, _slot: &str, text: &str) -> Option<String> {
        let hinted = text.split_whitespace().next().unwrap_or("0");
        Some(format!("{} {hinted}", problem.prompt))
    }

    /// Bandits are not warm-started: the tabular policy starts from its given logits.
    fn sft_example(&self, _rng: &mut ChaCha8Rng) -> SftExample {
        SftExample {
            context: self.problems[0].prompt.clone(),
            target: self.problems[0].answer.clone(),
        }
    }

    fn max_new_tokens(&self) -> usize {
        1
    }
}

// ---------------------------------------------------------------------------------------------
// The tabular policy's token numbering (`zoo_models::tabular`): number `n` is token `3 + n`,
// token 1 begins a context.
// ---------------------------------------------------------------------------------------------

/// The token of number `n`.
pub fn token(n: u32) -> u32 {
    3 + n
}

/// Logits over `vocab` tokens: `-30` everywhere except `logits` at the given numbers.
pub fn logits_over(vocab: usize, entries: &[(u32, f32)]) -> Vec<f32> {
    let mut z = vec![-30.0f32; vocab];
    for &(n, value) in entries {
        z[token(n) as usize] = value;
    }
    z
}

// ---------------------------------------------------------------------------------------------
// E4: reason or guess
// ---------------------------------------------------------------------------------------------

/// Numbers of the leakage toy: actions, answers and hints.
mod leak {
    /// Step 1: reason.
    pub const REASON: u32 = 1;
    /// Step 1: guess.
    pub const GUESS: u32 = 2;
    /// Answer `a` is number `ANSWER + a`.
    pub const ANSWER: u32 = 10;
    /// A hint of answer `a` is number `HINT + a`.
    pub const HINT: u32 = 40;
    /// A hint without an answer (a demonstration that reasoned).
    pub const NO_ANSWER: u32 = 70;
    /// Question `q` is number `QUESTION + q`.
    pub const QUESTION: u32 = 80;
}

/// The "reason-or-guess" leakage toy E4 (`algorithms.md` §9): step 1 chooses R (reward 1 with
/// probability `c`) or G; after G, step 2 emits one of `k` answers, rewarded iff it equals the
/// episode's hidden answer. A teacher shown an answer hint prefers to skip reasoning
/// (`P(R | h) = q_t`) and guesses the hint with probability 0.9. With `memorize = Some(n)`, each
/// of `n` training questions has a fixed hidden answer and its own student table; held-out
/// questions are new.
#[derive(Debug, Clone)]
pub struct Leakage {
    /// Answers.
    pub k: u32,
    /// `P(reward | R)`.
    pub c: f64,
    /// The teacher's `P(R | hint)`.
    pub q_t: f64,
    /// The student's initial `P(R)`.
    pub p_r: f64,
    /// Training questions with fixed answers (the memorization variant), or one question with
    /// a fresh hidden answer per episode.
    pub memorize: Option<u32>,
    heldout: Vec<Problem>,
}

impl Leakage {
    /// The spec's example numbers: K = 4, c = 1, q_T = 0.2, p_R = 0.5.
    pub fn new(memorize: Option<u32>) -> Self {
        let mut env = Self {
            k: 4,
            c: 1.0,
            q_t: 0.2,
            p_r: 0.5,
            memorize,
            heldout: Vec::new(),
        };
        // Held-out: the plain question with every answer (one fresh episode each), or, when
        // memorizing, 16 new questions.
        env.heldout = match memorize {
            None => (0..env.k).map(|a| env.problem(0, a, true)).collect(),
            Some(n) => (n..n + 16)
                .map(|q| env.problem(q, env.fixed_answer(q), true))
                .collect(),
        };
        env
    }

    fn fixed_answer(&self, question: u32) -> u32 {
        (question * 7 + 3) % self.k
    }

    fn problem(&self, question: u32, answer: u32, success: bool) -> Problem {
        Problem {
            prompt: (leak::QUESTION + question).to_string(),
            question: (leak::QUESTION + question).to_string(),
            answer: format!("{} {}", leak::ANSWER + answer, u8::from(success)),
            solution: (leak::ANSWER + answer).to_string(),
        }
    }

    /// Vocabulary size of the tabular policy.
    pub fn vocab(&self) -> usize {
        token(leak::QUESTION + self.memorize.unwrap_or(1) + 16) as usize + 1
    }

    /// The tabular rows, each with its states: the student's step-1 choice (one row shared by
    /// every question), its step-2 answer table per question, and the teacher's under each
    /// hint.
    pub fn rows(&self) -> Vec<(Vec<Vec<u32>>, Vec<f32>)> {
        let vocab = self.vocab();
        let step1 = |p_r: f64| {
            logits_over(
                vocab,
                &[
                    (leak::REASON, (p_r / (1.0 - p_r)).ln() as f32),
                    (leak::GUESS, 0.0),
                ],
            )
        };
        let uniform: Vec<(u32, f32)> = (0..self.k).map(|a| (leak::ANSWER + a, 0.0)).collect();
        let questions: Vec<u32> = match self.memorize {
            None => vec![0],
            Some(n) => (0..n + 16).collect(),
        };
        let context = |q: u32| vec![1, token(leak::QUESTION + q)];
        let extend = |mut s: Vec<u32>, n: u32| {
            s.push(token(n));
            s
        };
        let mut rows = vec![(
            questions.iter().map(|&q| context(q)).collect(),
            step1(self.p_r),
        )];
        for &q in &questions {
            rows.push((
                vec![extend(context(q), leak::GUESS)],
                logits_over(vocab, &uniform),
            ));
        }
        // Teachers: an answer hint, or a hint without an answer; constant (never visited by
        // the student, so never trained).
        for hint in (0..self.k).map(|a| leak::HINT + a).chain([leak::NO_ANSWER]) {
            let q_t = if hint == leak::NO_ANSWER {
                self.p_r
            } else {
                self.q_t
            };
            let hinted: Vec<Vec<u32>> = questions
                .iter()
                .map(|&q| extend(context(q), hint))
                .collect();
            let guessed: Vec<Vec<u32>> = hinted
                .iter()
                .map(|s| extend(s.clone(), leak::GUESS))
                .collect();
            let answers: Vec<(u32, f32)> = (0..self.k)
                .map(|a| {
                    let p = match hint {
                        h if h == leak::HINT + a => 0.9,
                        leak::NO_ANSWER => 1.0 / self.k as f64,
                        _ => 0.1 / (self.k - 1) as f64,
                    };
                    (leak::ANSWER + a, p.ln() as f32)
                })
                .collect();
            rows.push((hinted, step1(q_t)));
            rows.push((guessed, logits_over(vocab, &answers)));
        }
        rows
    }

    /// The exact expected reward of the student on the held-out problems, given its
    /// distribution at a state (`π(· | state)` over tokens).
    pub fn expected_reward(&self, distribution: &dyn Fn(&[u32]) -> Option<Vec<f64>>) -> f64 {
        self.expected_reward_on(&self.heldout, distribution)
    }

    /// One episode per training question (the memorization variant) or per answer.
    pub fn training_problems(&self) -> Vec<Problem> {
        match self.memorize {
            None => (0..self.k).map(|a| self.problem(0, a, true)).collect(),
            Some(n) => (0..n)
                .map(|q| self.problem(q, self.fixed_answer(q), true))
                .collect(),
        }
    }

    /// The exact expected reward on `problems`.
    pub fn expected_reward_on(
        &self,
        problems: &[Problem],
        distribution: &dyn Fn(&[u32]) -> Option<Vec<f64>>,
    ) -> f64 {
        let mut total = 0.0;
        for problem in problems {
            let question: u32 = problem.prompt.parse().unwrap_or(leak::QUESTION);
            let answer: u32 = problem.solution.parse().unwrap_or(leak::ANSWER);
            let context = vec![1, token(question)];
            let Some(step1) = distribution(&context) else {
                continue;
            };
            let mut guessed = context.clone();
            guessed.push(token(leak::GUESS));
            let step2 = distribution(&guessed).unwrap_or_default();
            let p_r = step1[token(leak::REASON) as usize];
            let p_g = step1[token(leak::GUESS) as usize];
            let hit = step2.get(token(answer) as usize).copied().unwrap_or(0.0);
            total += p_r * self.c + p_g * hit;
        }
        total / problems.len().max(1) as f64
    }

    /// The student's `P(R)` on the first question.
    pub fn reason_probability(&self, distribution: &dyn Fn(&[u32]) -> Option<Vec<f64>>) -> f64 {
        distribution(&[1, token(leak::QUESTION)]).map_or(0.0, |p| p[token(leak::REASON) as usize])
    }
}

/// Rewards a leakage-toy response: R earns the episode's coin, G then `x` earns `x == a*`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeakageVerifier;

impl Verifier for LeakageVerifier {
    fn name(&self) -> &str {
        "leakage"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        let words: Vec<&str> = response.split_whitespace().collect();
        let mut gold = problem.answer.split_whitespace();
        let (answer, coin) = (gold.next().unwrap_or(""), gold.next() == Some("1"));
        let (correct, extracted) = match words.as_slice() {
            [r] if *r == leak::REASON.to_string() => (coin, None),
            [g, x] if *g == leak::GUESS.to_string() => (*x == answer, Some(x.to_string())),
            _ => (false, None),
        };
        Verdict {
            score: if correct { 1.0 } else { 0.0 },
            correct,
            parsed: !words.is_empty(),
            reason: format!("response `{response}`, hidden answer {answer}"),
            extracted,
        }
    }
}

impl Task for Leakage {
    fn name(&self) -> &str {
        if self.memorize.is_some() {
            "leakage-memorize"
        } else {
            "leakage"
        }
    }

    fn sample_problems(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem> {
        use rand::Rng;
        (0..n)
            .map(|_| {
                let success = rng.random::<f64>() < self.c;
                match self.memorize {
                    None => self.problem(0, rng.random_range(0..self.k), success),
                    Some(count) => {
                        let q = rng.random_range(0..count);
                        self.problem(q, self.fixed_answer(q), success)
                    }
                }
            })
            .collect()
    }

    fn heldout(&self) -> &[Problem] {
        &self.heldout
    }

    fn verifier(&self) -> &dyn Verifier {
        &LeakageVerifier
    }

    /// Every slot is one token after the question: the answer hinted (gold, wrong, the
    /// solution, or a guessing group-mate's answer), or "no answer" for a group-mate that
    /// reasoned.
    fn hint_slot(&self, problem: &Problem, _slot: &str, text: &str) -> Option<String> {
        let hinted = text
            .split_whitespace()
            .filter_map(|w| w.parse::<u32>().ok())
            .find(|n| (leak::ANSWER..leak::ANSWER + self.k).contains(n))
            .map_or(leak::NO_ANSWER, |n| leak::HINT + (n - leak::ANSWER));
        Some(format!("{} {hinted}", problem.prompt))
    }

    fn sft_example(&self, _rng: &mut ChaCha8Rng) -> SftExample {
        SftExample {
            context: self.heldout[0].prompt.clone(),
            target: leak::REASON.to_string(),
        }
    }

    fn max_new_tokens(&self) -> usize {
        2
    }
}

// ---------------------------------------------------------------------------------------------
// A short sequence bandit: length and aggregation
// ---------------------------------------------------------------------------------------------

/// Numbers of the sequence bandit.
mod seq {
    /// Think one more step (continue).
    pub const THINK: u32 = 1;
    /// Answer right (ends the response).
    pub const RIGHT: u32 = 2;
    /// Answer wrong (ends the response).
    pub const WRONG: u32 = 3;
    /// The question.
    pub const QUESTION: u32 = 4;
    /// A hint of action `a` is number `HINT + a`.
    pub const HINT: u32 = 10;
}

/// A short sequence bandit for length effects (`algorithms.md` §0.2, G-5): a response thinks
/// for some steps, then answers right (reward 1) or wrong, at most `max_len` tokens. Length
/// is not rewarded, so any drift in the expected length comes from how the objective weighs
/// tokens of long and short responses (token-mean, seq-mean-token-mean, constant).
#[derive(Debug, Clone)]
pub struct Sequence {
    /// The most tokens per response.
    pub max_len: usize,
    problems: Vec<Problem>,
}

impl Sequence {
    /// Responses of at most 6 tokens; initially think with probability 0.5 at each step and
    /// answer right a quarter of the time.
    pub fn new() -> Self {
        Self {
            max_len: 6,
            problems: vec![Problem {
                prompt: seq::QUESTION.to_string(),
                question: seq::QUESTION.to_string(),
                answer: seq::RIGHT.to_string(),
                solution: seq::RIGHT.to_string(),
            }],
        }
    }

    /// Vocabulary size of the tabular policy.
    pub fn vocab(&self) -> usize {
        token(seq::HINT + seq::WRONG) as usize + 1
    }

    fn state(thinks: usize, hint: Option<u32>) -> Vec<u32> {
        let mut s = vec![1, token(seq::QUESTION)];
        s.extend(hint.map(|h| token(seq::HINT + h)));
        s.extend(std::iter::repeat_n(token(seq::THINK), thinks));
        s
    }

    /// One row per number of thinking steps so far (and the same under a hint).
    pub fn rows(&self) -> Vec<(Vec<Vec<u32>>, Vec<f32>)> {
        let vocab = self.vocab();
        let mut rows = Vec::new();
        for thinks in 0..self.max_len {
            let last = thinks + 1 == self.max_len;
            let mut entries = vec![(seq::RIGHT, -(3f32).ln()), (seq::WRONG, 0.0)];
            if !last {
                // P(think) = 0.5, then 1:3 right:wrong.
                entries.push((seq::THINK, (4f32 / 3.0).ln()));
            }
            let z = logits_over(vocab, &entries);
            let states = [None, Some(seq::RIGHT), Some(seq::WRONG), Some(seq::THINK)]
                .into_iter()
                .map(|hint| Self::state(thinks, hint))
                .collect();
            rows.push((states, z));
        }
        rows
    }

    /// Exact expected reward and expected length under `distribution`.
    pub fn expectations(&self, distribution: &dyn Fn(&[u32]) -> Option<Vec<f64>>) -> (f64, f64) {
        let (mut reward, mut length, mut reach) = (0.0, 0.0, 1.0);
        for thinks in 0..self.max_len {
            let Some(p) = distribution(&Self::state(thinks, None)) else {
                break;
            };
            let (right, wrong) = (p[token(seq::RIGHT) as usize], p[token(seq::WRONG) as usize]);
            reward += reach * right;
            length += reach * (right + wrong) * (thinks + 1) as f64;
            reach *= p[token(seq::THINK) as usize];
        }
        (reward, length)
    }
}

impl Default for Sequence {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for Sequence {
    fn name(&self) -> &str {
        "sequence"
    }

    fn sample_problems(&self, _rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem> {
        vec![self.problems[0].clone(); n]
    }

    fn heldout(&self) -> &[Problem] {
        &self.problems
    }

    /// Rewarded iff the last action is the right answer.
    fn verifier(&self) -> &dyn Verifier {
        &LastActionVerifier
    }

    /// Every slot is one token after the question: the hinted action (the last number of
    /// `text`, the right answer when there is none).
    fn hint_slot(&self, problem: &Problem, _slot: &str, text: &str) -> Option<String> {
        let action = text
            .split_whitespace()
            .last()
            .and_then(|w| w.parse::<u32>().ok())
            .filter(|a| (seq::THINK..=seq::WRONG).contains(a))
            .unwrap_or(seq::RIGHT);
        Some(format!("{} {}", problem.prompt, seq::HINT + action))
    }

    fn sft_example(&self, _rng: &mut ChaCha8Rng) -> SftExample {
        SftExample {
            context: self.problems[0].prompt.clone(),
            target: self.problems[0].answer.clone(),
        }
    }

    fn max_new_tokens(&self) -> usize {
        self.max_len
    }
}

/// Rewards a response whose last action equals the gold action.
#[derive(Debug, Clone, Copy, Default)]
pub struct LastActionVerifier;

impl Verifier for LastActionVerifier {
    fn name(&self) -> &str {
        "last-action"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        let last = response.split_whitespace().last().map(str::to_string);
        let correct = last.as_deref() == Some(problem.answer.as_str());
        Verdict {
            score: if correct { 1.0 } else { 0.0 },
            correct,
            parsed: last.is_some(),
            reason: format!("last action {last:?}, right is {}", problem.answer),
            extracted: last,
        }
    }
}
