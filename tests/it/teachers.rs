//! Teacher contexts through the trainer: what an objective's `teacher_rows` picks reaches its
//! credit stage row by row.

use std::sync::{Arc, Mutex};

use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::objective::{BuildContext, CreditInput, LossInput, LossTerms, Needs};
use zoo::zoo_core::optim::OptimConfig;
use zoo::zoo_core::trainer::{RolloutConfig, Trainer, TrainerConfig, UpdateConfig};
use zoo::zoo_core::{
    Aggregation, Credit, Objective, ObjectiveConfig, Result, TeacherGroup, TeacherRow,
};
use zoo::zoo_models::TabularPolicy;
use zoo::zoo_verifiers::bandit::{Arms, Question};

/// What one credit call saw: rewards, group ids, the pass's `has_hint`, the loss mask the
/// credit returned, and whether the pass held any scored row or log-prob.
type Seen = (Vec<f32>, Vec<usize>, Vec<bool>, Vec<f32>, bool);

/// SDPO, recording each credit call.
struct Recorded {
    inner: Box<dyn Objective>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Objective for Recorded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn needs(&self) -> Needs {
        self.inner.needs()
    }
    fn teacher_rows(&self, step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        self.inner.teacher_rows(step, group)
    }
    fn aggregation(&self) -> Aggregation {
        self.inner.aggregation()
    }
    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let credit = self.inner.credit(input)?;
        self.seen.lock().unwrap().push((
            input.rewards.to_vec(),
            input.group_ids.to_vec(),
            input.teachers[0].has_hint.clone(),
            credit
                .mask
                .as_ref()
                .expect("SDPO returns a mask")
                .data
                .clone(),
            input.teachers[0].scored.iter().any(|&s| s)
                || input.teachers[0].logprobs.data.iter().any(|&x| x != 0.0),
        ));
        Ok(credit)
    }
    fn token_divergence(&self, student: Tensor<3>, teacher: Tensor<3>) -> Option<Tensor<2>> {
        self.inner.token_divergence(student, teacher)
    }
    fn loss(&self, input: LossInput) -> LossTerms {
        self.inner.loss(input)
    }
}

#[test]
fn sdpo_masks_exactly_the_responses_without_a_successful_group_mate() {
    zoo::link_all();
    // Five arms, one correct: with a uniform policy a group of 4 holds 0, 1 or more successes,
    // so every case of the rule occurs over a few steps.
    let task = Arms::new(
        "five-arm",
        vec![Question {
            logits: vec![0.0; 5],
            correct: vec![3],
        }],
    );
    let context = BuildContext {
        max_new_tokens: 1,
        group_size: 4,
        steps: 4,
        temperature: 1.0,
        evaluation: false,
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let objective = Recorded {
        inner: zoo_sdpo::SdpoConfig::default().build(&context).unwrap(),
        seen: Arc::clone(&seen),
    };
    let config = TrainerConfig {
        rollout: RolloutConfig {
            prompts_per_step: 8,
            group_size: 4,
            temperature: 1.0,
            max_new_tokens: 1,
        },
        update: UpdateConfig::default(),
        optim: OptimConfig {
            lr: 0.05,
            ..OptimConfig::default()
        },
        checkpoint_every: 0,
        checkpoint_keep: 0,
        peak_tflops: 0.0,
    };
    let policy = TabularPolicy::shared(task.rows(), task.vocab(), &Device::flex()).unwrap();
    let mut trainer =
        Trainer::new(config, 3, 4, Box::new(policy), Box::new(objective), &task).unwrap();
    let mut fractions = Vec::new();
    for step in 1..=4 {
        let metrics = trainer.step(step).unwrap();
        fractions.push(metrics["sdpo/distill_frac"]);
        // The distillation pass is read in the update, never scored on its own.
        assert_eq!(metrics["teacher/scored_frac"], 0.0);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    let (mut with, mut without) = (0, 0);
    for ((rewards, groups, has_hint, mask, scored), fraction) in seen.iter().zip(fractions) {
        assert!(!scored, "the distillation pass has no log-probs of its own");
        for i in 0..rewards.len() {
            let mate =
                (0..rewards.len()).any(|j| j != i && groups[j] == groups[i] && rewards[j] >= 0.5);
            assert_eq!(has_hint[i], mate, "response {i}: {rewards:?} {groups:?}");
            assert_eq!(
                mask[i],
                f32::from(u8::from(mate)),
                "response {i}'s loss mask"
            );
            if mate { with += 1 } else { without += 1 }
        }
        let expected = has_hint.iter().filter(|&&h| h).count() as f64 / has_hint.len() as f64;
        assert_eq!(fraction, expected);
    }
    assert!(
        with > 0 && without > 0,
        "both cases occurred: {with} / {without}"
    );
}

/// `log.rollouts = true`: a one-step CEPO run's dump holds the step's rewards and advantages
/// (its metrics follow from them) and the teachers' contexts, which decode to the documented
/// text: on the CPU world the prompt with the answer in its hint slot, `12+34=[h:46]`.
#[test]
fn the_rollout_dump_reproduces_the_step_and_decodes_to_the_hinted_prompts() {
    use serde_json::Value;
    use zoo::zoo_core::policy::Tokenizer;
    use zoo::zoo_models::CharTokenizer;

    use crate::{TEST_WARM_START, mod10_cache, run};
    let cache = mod10_cache();
    let out = std::env::temp_dir().join(format!("zoo-it-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.to_string_lossy().to_string();
    let mut args = vec![
        "train", "--algo", "cepo", "--steps", "1", "--out", &out_arg, "--quiet",
    ];
    args.extend_from_slice(TEST_WARM_START);
    args.extend_from_slice(&[
        "--set",
        "rollout.prompts_per_step=8",
        "--set",
        "eval.problems=10",
        "--set",
        "log.rollouts=true",
    ]);
    let output = run(cache, &args);
    assert!(output.status.success(), "cepo failed to train");
    let metrics: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let dump = std::fs::read_to_string(out.join("rollouts/step-000001.jsonl")).unwrap();
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8 * 8, "one line per response");
    let mean = |key: &str, f: &dyn Fn(&Value) -> f64| {
        lines.iter().map(|l| f(&l[key])).sum::<f64>() / lines.len() as f64
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(
        mean("reward", &|v| v.as_f64().unwrap()),
        metrics["reward/mean"].as_f64().unwrap()
    ));
    assert!(close(
        mean("advantage", &|v| v.as_f64().unwrap().abs()),
        metrics["cepo/adv_abs_mean"].as_f64().unwrap()
    ));
    // The advantages are GRPO's of the dumped rewards and groups (Bessel std, eps 1e-6).
    for line in &lines {
        let group: Vec<f64> = lines
            .iter()
            .filter(|other| other["group"] == line["group"])
            .map(|other| other["reward"].as_f64().unwrap())
            .collect();
        let n = group.len() as f64;
        let mean = group.iter().sum::<f64>() / n;
        let std = (group.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let expected = (line["reward"].as_f64().unwrap() - mean) / (std + 1e-6);
        let got = line["advantage"].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}: {line}");
    }
    assert!(close(
        mean("advantage", &|v| f64::from(u8::from(
            v.as_f64().unwrap() != 0.0
        ))),
        metrics["cepo/nonzero_adv_frac"].as_f64().unwrap()
    ));
    let tokenizer = CharTokenizer;
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut checked = 0;
    for line in &lines {
        let prompt = line["prompt"].as_str().unwrap();
        assert_eq!(tokenizer.decode(&ids(&line["context_ids"])), prompt);
        assert_eq!(
            tokenizer.decode(&ids(&line["response_ids"])),
            line["response"].as_str().unwrap()
        );
        assert_eq!(
            line["verdict"]["score"].as_f64(),
            line["reward"].as_f64(),
            "{line}"
        );
        for teacher in line["teachers"].as_array().unwrap() {
            let hint = teacher["hint"].as_str().unwrap();
            let text = tokenizer.decode(&ids(&teacher["context_ids"]));
            assert_eq!(text, format!("{prompt}[h:{hint}]"), "{teacher}");
            match teacher["pass"].as_str().unwrap() {
                "gold-answer" => assert_ne!(hint, ""),
                "wrong-answer" => assert!(
                    lines.iter().any(|other| other["group"] == line["group"]
                        && other["verdict"]["extracted"].as_str() == Some(hint)
                        && other["reward"].as_f64() == Some(0.0)),
                    "the wrong answer {hint} is a rejected group-mate's"
                ),
                other => panic!("unknown pass {other}"),
            }
            // λ > 0 at step 1: scored iff A ≠ 0 and the group has a wrong answer.
            let moves = line["advantage"].as_f64().unwrap() != 0.0;
            let contrast = line["teachers"].as_array().unwrap().len() == 2;
            assert_eq!(
                teacher["scored"].as_bool(),
                Some(moves && contrast),
                "{line}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no teacher context in the dump");
    std::fs::remove_dir_all(&out).unwrap();
}

/// An RLCSD trainer on a five-armed bandit whose correct arms are `correct`.
fn rlcsd_trainer(task: &Arms, sync: usize, weight_decay: f64) -> Trainer<'_> {
    zoo::link_all();
    let objective = zoo_rlcsd::RlcsdConfig {
        teacher_sync_interval: sync,
        ..zoo_rlcsd::RlcsdConfig::default()
    }
    .build(&BuildContext {
        max_new_tokens: 1,
        group_size: 8,
        steps: 4,
        temperature: 1.0,
        evaluation: false,
    })
    .unwrap();
    let config = TrainerConfig {
        rollout: RolloutConfig {
            prompts_per_step: 4,
            group_size: 8,
            temperature: 1.0,
            max_new_tokens: 1,
        },
        update: UpdateConfig::default(),
        optim: OptimConfig {
            lr: 0.05,
            weight_decay,
            ..OptimConfig::default()
        },
        checkpoint_every: 0,
        checkpoint_keep: 0,
        peak_tflops: 0.0,
    };
    let policy = TabularPolicy::shared(task.rows(), task.vocab(), &Device::flex()).unwrap();
    Trainer::new(config, 5, 4, Box::new(policy), objective, task).unwrap()
}

fn five_arms(correct: Vec<u32>) -> Arms {
    Arms::new(
        "five-arm",
        vec![Question {
            logits: vec![0.0; 5],
            correct,
        }],
    )
}

/// Every value of `tensors`, in name order.
fn flat(tensors: &zoo::zoo_core::policy::NamedTensors) -> Vec<f32> {
    tensors
        .values()
        .flat_map(|t| t.value.clone().into_data().try_into_vec::<f32>().unwrap())
        .collect()
}

/// The weights of checkpoint `file` of `step`, flattened by name.
fn saved(trainer: &mut Trainer<'_>, dir: &std::path::Path, step: usize, file: &str) -> Vec<f32> {
    let folder = trainer.save_checkpoint(dir, step).unwrap();
    flat(&zoo::zoo_core::checkpoint::load_safetensors(&folder.join(file), &Device::flex()).unwrap())
}

/// RLCSD's snapshot teacher: the initial weights until `teacher_sync_interval` optimizer steps
/// have been taken, then a copy of the policy, checkpointed beside it.
#[test]
fn the_snapshot_teacher_copies_the_policy_every_interval_of_optimizer_steps() {
    let task = five_arms(vec![3]);
    let mut trainer = rlcsd_trainer(&task, 2, 0.0);
    let dir = std::env::temp_dir().join(format!("zoo-it-snapshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let initial = saved(&mut trainer, &dir, 0, "model.safetensors");
    for step in 1..=4 {
        let metrics = trainer.step(step).unwrap();
        assert!(
            metrics.contains_key("actor/grad_norm"),
            "step {step} trained: {metrics:?}"
        );
        let policy = saved(&mut trainer, &dir, step, "model.safetensors");
        let teacher = saved(&mut trainer, &dir, step, "teacher_snapshot.safetensors");
        assert_ne!(policy, initial, "step {step} moved the policy");
        if step % 2 == 0 {
            assert_eq!(teacher, policy, "refreshed after optimizer step {step}");
        } else {
            assert_ne!(teacher, policy, "step {step}: the teacher lags the policy");
        }
        if step == 1 {
            assert_eq!(
                teacher, initial,
                "the snapshot starts as the initial policy"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A step whose every response lacks a hint pair (every arm is right: no wrong sibling) takes
/// no optimizer step: with weight decay a zero-gradient AdamW step would move the weights.
#[test]
fn rlcsd_takes_no_optimizer_step_without_a_hint_pair() {
    let task = five_arms(vec![0, 1, 2, 3, 4]);
    let mut trainer = rlcsd_trainer(&task, 10, 0.1);
    let before = flat(&trainer.policy().parameters());
    let metrics = trainer.step(1).unwrap();
    assert_eq!(metrics["actor/empty_updates_skipped"], 1.0, "{metrics:?}");
    assert_eq!(metrics["rlcsd/valid_sample_frac"], 0.0);
    assert!(
        !metrics.contains_key("actor/loss"),
        "no update, no loss: {metrics:?}"
    );
    let after = flat(&trainer.policy().parameters());
    assert_eq!(before, after, "the weights did not move");
    // A bandit with wrong arms has pairs, and trains.
    let task = five_arms(vec![3]);
    let mut trainer = rlcsd_trainer(&task, 10, 0.1);
    let metrics = trainer.step(1).unwrap();
    assert_eq!(metrics["actor/empty_updates_skipped"], 0.0);
    assert!(metrics["rlcsd/valid_sample_frac"] > 0.0);
}

/// Issue 22, item 6: a run writes its frozen initial policy once, beside its step folders;
/// each checkpoint names it with its hash. A resumed run is exact; a checkpoint folder copied
/// elsewhere loads with the file beside it, and without it (or with another run's) says what it
/// needs.
#[test]
fn the_initial_policy_is_written_once_per_run_and_copies_say_what_they_need() {
    zoo::link_all();
    let task = five_arms(vec![3]);
    // GRPO with a KL term keeps the initial policy as its reference.
    let build = || {
        let objective = zoo_grpo::GrpoConfig {
            kl_coef: 0.1,
            ..Default::default()
        }
        .build(&BuildContext {
            max_new_tokens: 1,
            group_size: 4,
            steps: 3,
            temperature: 1.0,
            evaluation: false,
        })
        .unwrap();
        let config = TrainerConfig {
            rollout: RolloutConfig {
                prompts_per_step: 4,
                group_size: 4,
                temperature: 1.0,
                max_new_tokens: 1,
            },
            optim: OptimConfig {
                lr: 0.05,
                ..OptimConfig::default()
            },
            ..TrainerConfig::default()
        };
        let policy = TabularPolicy::shared(task.rows(), task.vocab(), &Device::flex()).unwrap();
        Trainer::new(config, 9, 3, Box::new(policy), objective, &task).unwrap()
    };
    let base = std::env::temp_dir().join(format!("zoo-it-initial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("checkpoints");
    let mut trainer = build();
    let mut steps = Vec::new();
    for step in 1..=3 {
        steps.push(trainer.step(step).unwrap());
        if step < 3 {
            trainer.save_checkpoint(&dir, step).unwrap();
        }
    }
    let shared = dir.join("initial_policy.safetensors");
    assert!(shared.is_file(), "written once, beside the step folders");
    for step in 1..=2 {
        let folder = dir.join(format!("step-{step:06}"));
        assert!(!folder.join("initial_policy.safetensors").exists());
        let state = std::fs::read_to_string(folder.join("trainer_state.json")).unwrap();
        assert!(
            state.contains("\"path\": \"../initial_policy.safetensors\""),
            "{state}"
        );
    }
    // Resumed from step 2: step 3 as the uninterrupted run had it.
    let mut resumed = build();
    assert_eq!(
        resumed.load_checkpoint(&dir.join("step-000002")).unwrap(),
        2
    );
    let again = resumed.step(3).unwrap();
    assert!(
        steps[2]["actor/kl_loss"] != 0.0,
        "the policy left its reference"
    );
    for key in ["actor/kl_loss", "actor/loss", "actor/grad_norm"] {
        assert_eq!(again[key], steps[2][key], "{key}");
    }
    // A copy of the folder alone says what it needs; with the file beside it, it loads.
    let copy = base.join("elsewhere");
    let folder = copy.join("step-000002");
    std::fs::create_dir_all(&folder).unwrap();
    for entry in std::fs::read_dir(dir.join("step-000002")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), folder.join(entry.file_name())).unwrap();
    }
    let error = build().load_checkpoint(&folder).unwrap_err().to_string();
    assert!(
        error.contains("initial policy") && error.contains("copy `initial_policy.safetensors`"),
        "{error}"
    );
    // Another run's initial policy is refused by its hash.
    let mut other = build();
    other.step(1).unwrap();
    other.save_checkpoint(&base.join("other"), 1).unwrap();
    std::fs::copy(
        base.join("other/step-000001/model.safetensors"),
        copy.join("initial_policy.safetensors"),
    )
    .unwrap();
    let error = build().load_checkpoint(&folder).unwrap_err().to_string();
    assert!(error.contains("not this run's initial policy"), "{error}");
    std::fs::copy(&shared, copy.join("initial_policy.safetensors")).unwrap();
    assert_eq!(build().load_checkpoint(&folder).unwrap(), 2);
    std::fs::remove_dir_all(&base).unwrap();
}
