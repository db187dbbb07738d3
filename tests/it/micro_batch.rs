//! The update's gradient does not depend on how it is cut (design principle 1), and the output
//! head never runs on more positions than its chunk budget.
//!
//! Every registered objective is checked on a real decoder (the qwen2 fixture, vocabulary 320
//! over hidden size 64, and the tied llama fixture) against the one-graph gradient: the
//! objective's loss on `[rows, tokens]` log-probs (or divergences) of the whole mini-batch,
//! back-propagated in one pass. The cuts: rows that split groups unevenly, a token budget
//! (rows sorted by length), one row at a time, and head chunks of a few positions.

use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;
use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::burn::tensor::Gradients;
use zoo::zoo_core::objective::{BuildContext, LossInput, Objective};
use zoo::zoo_core::policy::{NamedTensors, Sample, Tokenizer};
use zoo::zoo_core::trainer::{DistillTeacher, MicroBatching, UpdateBatch, mini_batch_gradient};
use zoo::zoo_core::{Policy, Result, SamplingConfig, TokenMatrix, registry};
use zoo::zoo_llm::LlmPolicy;

/// Eight responses to four prompts (groups of two) with unequal context and response lengths,
/// a stale `ℓ^old`, a reference, mixed rewards, a credit mask that drops row 5, and a third of
/// the tokens selected for a two-path aggregation (RLCSD's).
struct Inputs {
    contexts: Vec<Vec<u32>>,
    teacher_contexts: Vec<Vec<u32>>,
    responses: Vec<Vec<u32>>,
    mask: TokenMatrix,
    old: TokenMatrix,
    reference: TokenMatrix,
    advantages: TokenMatrix,
    selected: TokenMatrix,
    rewards: Vec<f32>,
    group_ids: Vec<usize>,
}

impl Inputs {
    fn new(policy: &dyn Policy) -> Self {
        let lengths = [
            (3, 5),
            (3, 1),
            (7, 9),
            (7, 4),
            (2, 6),
            (2, 6),
            (5, 2),
            (5, 8),
        ];
        let token = |i: usize, k: usize| ((i * 37 + k * 11) % 280 + 10) as u32;
        let contexts: Vec<Vec<u32>> = lengths
            .iter()
            .enumerate()
            .map(|(i, &(c, _))| (0..c).map(|k| token(i / 2, k)).collect())
            .collect();
        // The teacher reads a hint before the same responses.
        let teacher_contexts = contexts
            .iter()
            .map(|c| [c.as_slice(), &[300, 301, 302]].concat())
            .collect();
        let responses: Vec<Vec<u32>> = lengths
            .iter()
            .enumerate()
            .map(|(i, &(_, t))| (0..t).map(|k| token(i + 5, k + 3)).collect())
            .collect();
        let cols = 9;
        let current =
            TokenMatrix::from_tensor(policy.token_logprobs(&contexts, &responses, 1.0, false));
        let (mut mask, mut old, mut reference, mut advantages, mut selected) = (
            TokenMatrix::zeros(8, cols),
            TokenMatrix::zeros(8, cols),
            TokenMatrix::zeros(8, cols),
            TokenMatrix::zeros(8, cols),
            TokenMatrix::zeros(8, cols),
        );
        for (i, r) in responses.iter().enumerate() {
            for t in 0..r.len() {
                let k = i * cols + t;
                mask.set(i, t, if i == 5 { 0.0 } else { 1.0 });
                // Stale enough that some ratios leave the clip range.
                old.set(
                    i,
                    t,
                    current.get(i, t) + if k % 2 == 0 { 0.3 } else { -0.05 },
                );
                reference.set(i, t, current.get(i, t) - 0.1 * (k % 3) as f32);
                advantages.set(i, t, if i % 3 == 0 { 1.3 } else { -0.7 });
                selected.set(i, t, if k % 3 == 1 { 1.0 } else { 0.0 });
            }
        }
        Self {
            contexts,
            teacher_contexts,
            responses,
            mask,
            old,
            reference,
            advantages,
            selected,
            rewards: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0],
            group_ids: vec![0, 0, 1, 1, 2, 2, 3, 3],
        }
    }

    /// The inputs of `rows` only, in that order.
    fn rows(&self, rows: &[usize]) -> Self {
        let pick = |v: &[Vec<u32>]| rows.iter().map(|&r| v[r].clone()).collect();
        let width = rows.iter().map(|&r| self.responses[r].len()).max().unwrap();
        let cut = |m: &TokenMatrix| {
            let m = m.select_rows(rows);
            TokenMatrix::from_rows((0..m.rows).map(|r| &m.row(r)[..width]), width)
        };
        Self {
            contexts: pick(&self.contexts),
            teacher_contexts: pick(&self.teacher_contexts),
            responses: pick(&self.responses),
            mask: cut(&self.mask),
            old: cut(&self.old),
            reference: cut(&self.reference),
            advantages: cut(&self.advantages),
            selected: cut(&self.selected),
            rewards: rows.iter().map(|&r| self.rewards[r]).collect(),
            group_ids: rows.iter().map(|&r| self.group_ids[r]).collect(),
        }
    }

    /// The inputs with `ℓ^old` as the trainer's pass scores it: the current weights, no graph.
    fn fresh(policy: &dyn Policy) -> Self {
        let mut inputs = Self::new(policy);
        inputs.old = TokenMatrix::from_tensor(policy.token_logprobs(
            &inputs.contexts,
            &inputs.responses,
            1.0,
            false,
        ));
        inputs
    }

    fn batch<'a>(&'a self, teacher: &'a dyn Policy) -> UpdateBatch<'a> {
        UpdateBatch {
            contexts: &self.contexts,
            responses: &self.responses,
            mask: &self.mask,
            old_logprobs: &self.old,
            old_is_current: false,
            ref_logprobs: Some(&self.reference),
            advantages: &self.advantages,
            selected: Some(&self.selected),
            teacher: Some(DistillTeacher {
                policy: teacher,
                contexts: &self.teacher_contexts,
            }),
            rewards: &self.rewards,
            group_ids: &self.group_ids,
        }
    }
}

fn build(name: &str) -> Box<dyn Objective> {
    let entry = registry::algorithm(name).unwrap();
    (entry.default_config)()
        .build(&BuildContext {
            max_new_tokens: 9,
            group_size: 2,
            steps: 10,
            temperature: 1.0,
            evaluation: false,
        })
        .unwrap()
}

/// The one-graph gradient: the whole mini-batch's log-probs (or logits) in one graph, the
/// objective's loss on them, one backward pass.
fn one_graph(
    policy: &dyn Policy,
    teacher: &dyn Policy,
    objective: &dyn Objective,
    inputs: &Inputs,
) -> (f64, NamedTensors) {
    let device = policy.device();
    let cols = inputs.responses.iter().map(Vec::len).max().unwrap();
    let logprobs = policy.token_logprobs(&inputs.contexts, &inputs.responses, 1.0, true);
    let divergence = objective.needs().student_logits.then(|| {
        let student = policy.token_logits(&inputs.contexts, &inputs.responses, true);
        let teacher = teacher.token_logits(&inputs.teacher_contexts, &inputs.responses, false);
        objective.token_divergence(student, teacher).unwrap()
    });
    let terms = objective.loss(LossInput {
        logprobs,
        old_logprobs: inputs.old.to_tensor(&device),
        ref_logprobs: Some(inputs.reference.to_tensor(&device)),
        advantages: inputs.advantages.to_tensor(&device),
        mask: inputs.mask.to_tensor(&device),
        divergence,
        rewards: inputs.rewards.clone(),
        group_ids: inputs.group_ids.clone(),
    });
    assert_eq!(terms.per_token.dims(), [inputs.responses.len(), cols]);
    let coefficients = objective
        .aggregation()
        .token_coefficients(&inputs.mask, Some(&inputs.selected));
    let mut loss = terms.per_token.mul(coefficients.to_tensor(&device)).sum();
    if let Some(scalar) = terms.scalar {
        loss = loss.add(scalar);
    }
    let value = loss.clone().into_scalar::<f64>();
    (value, policy.backward(loss))
}

fn values(t: &Tensor<1>) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Every gradient of `got` within `tol` of `want`'s largest magnitude (parameter by parameter);
/// a parameter missing from `want` must be zero in `got`.
fn assert_same_gradient(label: &str, want: &NamedTensors, got: &NamedTensors, tol: f32) {
    let mut reached = 0;
    for (name, g) in got {
        let b = values(&g.value);
        let Some(w) = want.get(name) else {
            assert!(
                b.iter().all(|&x| x == 0.0),
                "{label}: {name} is not reached"
            );
            continue;
        };
        let a = values(&w.value);
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        if scale > 0.0 {
            reached += 1;
        }
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale.max(1e-12),
                "{label}: {name}[{k}]: one graph {x}, cut {y} (scale {scale})"
            );
        }
    }
    assert!(
        reached > 10,
        "{label}: only {reached} parameters have a gradient"
    );
}

fn fixture(name: &str, chunk_positions: usize) -> LlmPolicy {
    crate::llm::load_on(name, &Device::flex())
        .0
        .with_chunk_positions(chunk_positions)
}

/// The cuts: (micro-batching, head chunk positions).
const CUTS: [(usize, usize, usize); 4] = [
    (8, 0, 1 << 20), // one micro-batch, one head chunk
    (3, 0, 5),       // 3 + 3 + 2 rows: groups cut unevenly; chunks of 5 positions
    (8, 40, 7),      // a budget of 40 padded tokens, rows sorted by length
    (1, 0, 1),       // one row, one position at a time
];

#[test]
fn every_objective_gets_the_one_graph_gradient_under_any_cut() {
    let names: Vec<&str> = registry::algorithms()
        .unwrap()
        .iter()
        .map(|e| e.name)
        .collect();
    assert!(names.len() >= 7, "objectives registered: {names:?}");
    assert!(
        names.contains(&"rlcsd"),
        "the two-path aggregation is covered"
    );
    let reference = fixture("qwen2", 1 << 20);
    let teacher = fixture("qwen3", 1 << 20);
    let inputs = Inputs::new(&reference);
    for name in names {
        let objective = build(name);
        let (loss, want) = one_graph(&reference, &teacher, objective.as_ref(), &inputs);
        for (rows, tokens, chunk) in CUTS {
            let policy = fixture("qwen2", chunk);
            let teacher = fixture("qwen3", chunk);
            let micro = MicroBatching {
                max_rows: rows,
                max_tokens: tokens,
            };
            let got = mini_batch_gradient(
                &policy,
                objective.as_ref(),
                &inputs.batch(&teacher),
                &(0..8).collect::<Vec<_>>(),
                micro,
                1.0,
                false,
            )
            .unwrap();
            let label = format!("{name}, {micro:?}, head chunks of {chunk}");
            approx::assert_relative_eq!(got.loss, loss, max_relative = 1e-4, epsilon = 1e-7);
            assert_same_gradient(&label, &want, &got.grads, 2e-4);
        }
    }
}

/// A mini-batch of some rows of the update batch gets the one-graph gradient of those rows
/// alone: the mask and RLCSD's selected tokens are cut with the same rows, so each path's
/// token count is the mini-batch's.
#[test]
fn a_mini_batch_of_some_rows_gets_the_gradient_of_those_rows_alone() {
    let reference = fixture("qwen2", 1 << 20);
    let teacher = fixture("qwen3", 1 << 20);
    let inputs = Inputs::new(&reference);
    let rows = [2, 3, 4, 5, 6, 7];
    let part = inputs.rows(&rows);
    for name in ["rlcsd", "grpo"] {
        let objective = build(name);
        let (loss, want) = one_graph(&reference, &teacher, objective.as_ref(), &part);
        let got = mini_batch_gradient(
            &fixture("qwen2", 5),
            objective.as_ref(),
            &inputs.batch(&teacher),
            &rows,
            MicroBatching {
                max_rows: 3,
                max_tokens: 0,
            },
            1.0,
            false,
        )
        .unwrap();
        approx::assert_relative_eq!(got.loss, loss, max_relative = 1e-4, epsilon = 1e-7);
        assert_same_gradient(&format!("{name}, rows {rows:?}"), &want, &got.grads, 2e-4);
    }
}

#[test]
fn a_tied_head_gets_the_one_graph_gradient_in_chunks() {
    let reference = fixture("llama-tied-llama3", 1 << 20);
    let inputs = Inputs::new(&reference);
    for name in ["grpo", "opsd"] {
        let objective = build(name);
        let (_, want) = one_graph(&reference, &reference, objective.as_ref(), &inputs);
        assert!(want.contains_key("model.embed_tokens.weight"));
        let policy = fixture("llama-tied-llama3", 3);
        // Twice in one process: the separate backward passes over a shared leaf leave no state.
        for _ in 0..2 {
            let got = mini_batch_gradient(
                &policy,
                objective.as_ref(),
                &inputs.batch(&policy),
                &(0..8).collect::<Vec<_>>(),
                MicroBatching {
                    max_rows: 3,
                    max_tokens: 0,
                },
                1.0,
                false,
            )
            .unwrap();
            assert_same_gradient(&format!("tied, {name}"), &want, &got.grads, 2e-4);
        }
    }
}

#[test]
fn token_budget_cuts_sorted_rows_within_the_budget() {
    let contexts: Vec<Vec<u32>> = [3, 3, 7, 7, 2, 2].iter().map(|&n| vec![1; n]).collect();
    let responses: Vec<Vec<u32>> = [5, 1, 9, 4, 6, 30].iter().map(|&n| vec![1; n]).collect();
    let micro = MicroBatching {
        max_rows: 4,
        max_tokens: 40,
    };
    let cuts = micro.split(&[0, 1, 2, 3, 4, 5], &contexts, &responses);
    // Longest first (ties in row order): row 5 (32 tokens) alone, as 3 + 16 would exceed 40;
    // 2 and 3 pad to 7 + 9 = 16 each (32), with 0 they would pad to 3 × 16; then 0, 4, 1 pad
    // to 3 × (3 + 6) = 27.
    assert_eq!(cuts, vec![vec![5], vec![2, 3], vec![0, 4, 1]]);
    for cut in &cuts {
        let width = cut.iter().map(|&r| contexts[r].len()).max().unwrap()
            + cut.iter().map(|&r| responses[r].len()).max().unwrap();
        assert!(cut.len() == 1 || cut.len() * width <= 40, "{cut:?}");
    }
    // For scoring, rows sharing a context stay together, whatever their responses' lengths.
    let shared: Vec<Vec<u32>> = [1, 2, 1, 2, 1, 2].iter().map(|&p| vec![p; 3]).collect();
    let cuts = micro.split_by_context(&[0, 1, 2, 3, 4, 5], &shared, &responses);
    assert_eq!(cuts, vec![vec![2, 4, 0], vec![5], vec![3, 1]]);
    // Without a budget: runs of `max_rows` in order.
    let rows_only = MicroBatching {
        max_rows: 4,
        max_tokens: 0,
    };
    assert_eq!(
        rows_only.split(&[0, 1, 2, 3, 4, 5], &contexts, &responses),
        vec![vec![0, 1, 2, 3], vec![4, 5]]
    );
}

/// What a [`Recording`] policy saw.
#[derive(Default)]
struct Seen {
    /// The shape of every output-head call.
    heads: Vec<[usize; 3]>,
    /// Calls that built logits over every response position at once.
    full_logits: usize,
    /// Trunk passes.
    hidden_calls: usize,
    /// Rows through trunk passes.
    hidden_rows: usize,
}

/// A fixture policy that records its calls into `seen`.
struct Recording {
    inner: LlmPolicy,
    seen: Arc<Mutex<Seen>>,
}

impl Recording {
    fn new(name: &str, chunk_positions: usize, seen: &Arc<Mutex<Seen>>) -> Self {
        Self {
            inner: fixture(name, chunk_positions),
            seen: seen.clone(),
        }
    }
}

impl Policy for Recording {
    fn tokenizer(&self) -> &dyn Tokenizer {
        self.inner.tokenizer()
    }
    fn device(&self) -> Device {
        self.inner.device()
    }
    fn token_logits(&self, contexts: &[Vec<u32>], responses: &[Vec<u32>], grad: bool) -> Tensor<3> {
        self.seen.lock().unwrap().full_logits += 1;
        self.inner.token_logits(contexts, responses, grad)
    }
    fn response_hidden(
        &self,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        grad: bool,
    ) -> Tensor<3> {
        let mut seen = self.seen.lock().unwrap();
        seen.hidden_calls += 1;
        seen.hidden_rows += contexts.len();
        drop(seen);
        self.inner.response_hidden(contexts, responses, grad)
    }
    fn head(&self, hidden: Tensor<3>, grad: bool) -> Tensor<3> {
        let logits = self.inner.head(hidden, grad);
        self.seen.lock().unwrap().heads.push(logits.dims());
        logits
    }
    fn head_chunk_positions(&self) -> usize {
        self.inner.head_chunk_positions()
    }
    fn sample(&self, p: &[Vec<u32>], s: &SamplingConfig, r: &mut ChaCha8Rng) -> Vec<Sample> {
        self.inner.sample(p, s, r)
    }
    fn gradients(&self, grads: &Gradients) -> NamedTensors {
        self.inner.gradients(grads)
    }
    fn parameters(&self) -> NamedTensors {
        self.inner.parameters()
    }
    fn set_parameters(&mut self, _values: &NamedTensors) -> Result<()> {
        unreachable!("the recorder is read-only")
    }
    fn snapshot(&self) -> Box<dyn Policy> {
        self.inner.snapshot()
    }
}

#[test]
fn no_head_call_exceeds_the_chunk_budget_and_no_full_logits_are_built() {
    const CHUNK: usize = 6;
    let policy = fixture("qwen2", CHUNK);
    let inputs = Inputs::new(&policy);
    let vocab = policy.config().vocab_size;
    for name in ["grpo", "disco", "opsd", "sdpo"] {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let student = Recording::new("qwen2", CHUNK, &seen);
        let teacher = Recording::new("qwen3", CHUNK, &seen);
        let objective = build(name);
        mini_batch_gradient(
            &student,
            objective.as_ref(),
            &inputs.batch(&teacher),
            &(0..8).collect::<Vec<_>>(),
            MicroBatching {
                max_rows: 8,
                max_tokens: 0,
            },
            1.0,
            false,
        )
        .unwrap();
        let seen = seen.lock().unwrap();
        assert!(!seen.heads.is_empty(), "{name}: the head ran");
        for &[b, c, v] in &seen.heads {
            assert_eq!(v, vocab);
            // `b` rows of one position each when the budget is smaller than the rows.
            assert!(
                b * c <= CHUNK.max(b),
                "{name}: a head call over {b} × {c} positions"
            );
        }
        assert_eq!(seen.full_logits, 0, "{name}: full logits built");
    }
}

/// Row 5's loss mask is all zero (the credit stage dropped it, as SDPO drops rows without a
/// demonstration): it adds nothing to the loss, so neither the student nor the distillation
/// teacher runs it, unless the loss couples the rows of the mini-batch (DisCO). That the
/// gradient is still the one-graph gradient is `every_objective_gets_the_one_graph_gradient_under_any_cut`.
#[test]
fn a_row_with_an_all_zero_loss_mask_runs_through_no_pass() {
    let policy = fixture("qwen2", 5);
    let inputs = Inputs::new(&policy);
    for (name, skipped) in [
        ("grpo", true),
        ("sdpo", true),
        ("opsd", true),
        ("disco", false),
    ] {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let student = Recording::new("qwen2", 5, &seen);
        let teacher_seen = Arc::new(Mutex::new(Seen::default()));
        let teacher = Recording::new("qwen3", 5, &teacher_seen);
        let objective = build(name);
        let got = mini_batch_gradient(
            &student,
            objective.as_ref(),
            &inputs.batch(&teacher),
            &(0..8).collect::<Vec<_>>(),
            MicroBatching {
                max_rows: 3,
                max_tokens: 0,
            },
            1.0,
            false,
        )
        .unwrap();
        let live = if skipped { 7 } else { 8 };
        assert_eq!(
            got.skipped_rows,
            if skipped { vec![5] } else { vec![] },
            "{name}"
        );
        // Whole-mini-batch losses run the trunk twice (score, then back-propagate).
        let passes = if objective.needs().whole_mini_batch {
            2
        } else {
            1
        };
        assert_eq!(
            seen.lock().unwrap().hidden_rows,
            passes * live,
            "{name}: student rows"
        );
        let teacher_rows = if objective.needs().student_logits {
            passes * live
        } else {
            0
        };
        assert_eq!(
            teacher_seen.lock().unwrap().hidden_rows,
            teacher_rows,
            "{name}: teacher rows"
        );
        let trained: usize = (0..8)
            .filter(|&r| !skipped || r != 5)
            .map(|r| inputs.responses[r].len())
            .sum();
        assert_eq!(got.trained_tokens, trained, "{name}");
    }
}

#[test]
fn whole_mini_batch_objectives_reuse_old_logprobs_while_fresh_exactly() {
    let policy = fixture("qwen2", 5);
    let inputs = Inputs::fresh(&policy);
    let objective = build("disco");
    assert!(objective.needs().whole_mini_batch);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recording = Recording::new("qwen2", 5, &seen);
    let micro = MicroBatching {
        max_rows: 3,
        max_tokens: 0,
    };
    let rows: Vec<usize> = (0..8).collect();
    let mut results = Vec::new();
    for fresh in [false, true] {
        seen.lock().unwrap().hidden_calls = 0;
        let got = mini_batch_gradient(
            &recording,
            objective.as_ref(),
            &inputs.batch(&policy),
            &rows,
            micro,
            1.0,
            fresh,
        )
        .unwrap();
        results.push((got, seen.lock().unwrap().hidden_calls));
    }
    let ((scored, scored_calls), (reused, reused_calls)) = (&results[0], &results[1]);
    // Three micro-batches: scored first, then back-propagated; with ℓ^old reused, only the
    // back-propagation runs.
    assert_eq!((*scored_calls, *reused_calls), (6, 3));
    approx::assert_relative_eq!(scored.loss, reused.loss, max_relative = 1e-5);
    assert_same_gradient("disco, ℓ^old reused", &scored.grads, &reused.grads, 1e-4);
}

#[test]
fn an_on_policy_update_without_an_old_pass_uses_its_own_logprobs_as_old() {
    let policy = fixture("qwen2", 5);
    let inputs = Inputs::fresh(&policy);
    let rows: Vec<usize> = (0..8).collect();
    let micro = MicroBatching {
        max_rows: 3,
        max_tokens: 0,
    };
    for name in ["grpo", "cepo", "disco", "sdpo"] {
        let objective = build(name);
        let scored = mini_batch_gradient(
            &policy,
            objective.as_ref(),
            &inputs.batch(&policy),
            &rows,
            micro,
            1.0,
            false,
        )
        .unwrap();
        let zeros = TokenMatrix::zeros(8, inputs.old.cols);
        let own = mini_batch_gradient(
            &policy,
            objective.as_ref(),
            &UpdateBatch {
                old_logprobs: &zeros,
                old_is_current: true,
                ..inputs.batch(&policy)
            },
            &rows,
            micro,
            1.0,
            true,
        )
        .unwrap();
        assert!(scored.logprobs.is_none());
        let own_logprobs = own.logprobs.as_ref().unwrap();
        // Row 5's loss mask is all zero: skipped (but by DisCO), its log-probs left at 0.
        let live: Vec<usize> = (0..8).filter(|r| !own.skipped_rows.contains(r)).collect();
        assert_eq!(own.skipped_rows.is_empty(), name == "disco", "{name}");
        crate::llm::assert_close(
            name,
            &own_logprobs.select_rows(&live).data,
            &inputs.old.select_rows(&live).data,
            1e-5,
        );
        for &r in &own.skipped_rows {
            assert!(
                own_logprobs.row(r).iter().all(|&x| x == 0.0),
                "{name}: row {r}"
            );
        }
        approx::assert_relative_eq!(own.loss, scored.loss, max_relative = 1e-4, epsilon = 1e-7);
        assert_same_gradient(
            &format!("{name}, own ℓ^old"),
            &scored.grads,
            &own.grads,
            2e-4,
        );
    }
}

#[test]
fn recomputing_the_trunk_layer_by_layer_gives_the_one_graph_gradient() {
    for name in ["qwen2", "llama-tied-llama3", "qwen3"] {
        let reference = fixture(name, 1 << 20);
        let inputs = Inputs::new(&reference);
        let policy = fixture(name, 7).with_recompute(true);
        assert!(policy.recomputes_trunk());
        for algo in ["grpo", "disco", "opsd"] {
            let objective = build(algo);
            let (loss, want) = one_graph(&reference, &reference, objective.as_ref(), &inputs);
            let got = mini_batch_gradient(
                &policy,
                objective.as_ref(),
                &inputs.batch(&reference),
                &(0..8).collect::<Vec<_>>(),
                MicroBatching {
                    max_rows: 8,
                    max_tokens: 40,
                },
                1.0,
                false,
            )
            .unwrap();
            approx::assert_relative_eq!(got.loss, loss, max_relative = 1e-4, epsilon = 1e-7);
            assert_same_gradient(
                &format!("{name}, {algo}, recomputed"),
                &want,
                &got.grads,
                2e-4,
            );
        }
    }
}

/// With LoRA adapters (PEFT's fixture adapter on qwen2, the base frozen), every cut and the
/// layer-by-layer recomputation give the one-graph gradient of the adapters, and nothing else.
#[test]
fn adapters_get_the_one_graph_gradient_under_any_cut_and_with_recomputation() {
    let adapter =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora/qwen2");
    let adapted = |chunk: usize| {
        fixture("qwen2", chunk)
            .with_adapter(&adapter, false, "qwen2")
            .unwrap()
    };
    let reference = adapted(1 << 20);
    let teacher = fixture("qwen3", 1 << 20);
    let inputs = Inputs::new(&reference);
    for algo in ["grpo", "disco", "opsd"] {
        let objective = build(algo);
        let (loss, want) = one_graph(&reference, &teacher, objective.as_ref(), &inputs);
        assert!(
            want.keys().all(|k| zoo::zoo_llm::lora::is_adapter(k)),
            "{algo}: {:?}",
            want.keys().collect::<Vec<_>>()
        );
        for (rows, tokens, chunk, recompute) in
            [(3, 0, 5, false), (8, 40, 7, true), (1, 0, 1, false)]
        {
            let policy = adapted(chunk).with_recompute(recompute);
            let micro = MicroBatching {
                max_rows: rows,
                max_tokens: tokens,
            };
            let got = mini_batch_gradient(
                &policy,
                objective.as_ref(),
                &inputs.batch(&fixture("qwen3", chunk)),
                &(0..8).collect::<Vec<_>>(),
                micro,
                1.0,
                false,
            )
            .unwrap();
            let label =
                format!("{algo}, adapters, {micro:?}, chunks of {chunk}, recompute {recompute}");
            approx::assert_relative_eq!(got.loss, loss, max_relative = 1e-4, epsilon = 1e-7);
            assert_same_gradient(&label, &want, &got.grads, 2e-4);
        }
    }
}
