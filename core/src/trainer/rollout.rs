//! Rollout: sample groups, verify them, keep the groups dynamic sampling accepts, and build
//! the teacher contexts of a step (with the objective's rules for them).

use crate::batch::{Rollout, RolloutBatch};
use crate::metrics::Metrics;
use crate::objective::Shortfall;
use crate::policy::Sample;
use crate::rng;
use crate::task::{Problem, Verdict};
use crate::teacher::{GroupResponses, TeacherGroup, check_rows};
use crate::{Error, Result};

use super::Trainer;

/// The groups of one step after sampling (and dynamic sampling's filter).
pub(super) struct Collected {
    pub(super) problems: Vec<Problem>,
    pub(super) batch: RolloutBatch,
    pub(super) verdicts: Vec<Verdict>,
}

impl Trainer<'_> {
    /// Samples groups, verifies them and, with dynamic sampling, keeps the groups the
    /// objective accepts until `prompts_per_step` are kept or the rounds run out.
    pub(super) fn collect(&self, step: usize, metrics: &mut Metrics) -> Result<Collected> {
        let wanted = self.config.rollout.prompts_per_step;
        let group_size = self.config.rollout.group_size;
        let dynamic = self.needs.dynamic_sampling;
        let rounds = dynamic.map_or(1, |d| d.max_rounds);
        let mut kept = Collected {
            problems: Vec::new(),
            batch: RolloutBatch {
                prompts: Vec::new(),
                rollouts: Vec::new(),
            },
            verdicts: Vec::new(),
        };
        let (mut generated, mut correct_count, mut rounds_used) = (0usize, 0usize, 0usize);
        let mut feature_counts: std::collections::BTreeMap<&'static str, usize> =
            Default::default();
        for round in 0..rounds {
            rounds_used += 1;
            let (problems, batch) = self.rollout(step, round)?;
            let judged = self.judge_shared(&problems, &batch, step, round)?;
            for (g, problem) in problems.into_iter().enumerate() {
                let members = &batch.rollouts[g * group_size..(g + 1) * group_size];
                let verdicts: Vec<Verdict> = judged[g * group_size..(g + 1) * group_size]
                    .iter()
                    .map(|j| {
                        for &(name, present) in &j.features {
                            *feature_counts.entry(name).or_default() += usize::from(present);
                        }
                        j.verdict.clone()
                    })
                    .collect();
                generated += members.len();
                correct_count += verdicts.iter().filter(|v| v.correct).count();
                let rewards: Vec<f32> = verdicts.iter().map(|v| v.score).collect();
                let correct: Vec<bool> = verdicts.iter().map(|v| v.correct).collect();
                let keep = dynamic.is_none() || self.objective.keep_group(&rewards, &correct);
                if !keep || kept.problems.len() == wanted {
                    continue;
                }
                let id = kept.problems.len();
                kept.batch.prompts.push(batch.prompts[g].clone());
                kept.batch
                    .rollouts
                    .extend(members.iter().cloned().map(|r| Rollout {
                        problem: id,
                        group_id: id,
                        ..r
                    }));
                kept.problems.push(problem);
                kept.verdicts.extend(verdicts);
            }
            if kept.problems.len() == wanted {
                break;
            }
        }
        metrics.insert(
            "accuracy/train".into(),
            correct_count as f64 / generated.max(1) as f64,
        );
        for (name, count) in feature_counts {
            metrics.insert(
                format!("task/{name}"),
                count as f64 / generated.max(1) as f64,
            );
        }
        if let Some(dynamic) = dynamic {
            metrics.insert("rollout/generation_rounds".into(), rounds_used as f64);
            metrics.insert("rollout/kept_groups".into(), kept.problems.len() as f64);
            if kept.problems.len() < wanted {
                metrics.insert(
                    "rollout/shortfall_groups".into(),
                    (wanted - kept.problems.len()) as f64,
                );
                if dynamic.on_shortfall == Shortfall::Error {
                    return Err(Error::Config(format!(
                        "step {step}: dynamic sampling kept {} of {wanted} groups after {rounds_used} generation rounds (every other group was all-correct or all-wrong)\nhint: raise the objective's `max_gen_rounds`, or set its `on_shortfall = \"log\"` to train on the groups kept",
                        kept.problems.len()
                    )));
                }
            }
        }
        Ok(kept)
    }

    /// Every response judged, each rank judging its share and the ranks exchanging verdicts:
    /// a verifier may depend on the clock (the math judge gives up after 200 ms), so verdicts
    /// computed once and shared keep every rank's batch the same.
    fn judge_shared(
        &self,
        problems: &[Problem],
        batch: &RolloutBatch,
        step: usize,
        round: usize,
    ) -> Result<Vec<crate::task::Judged>> {
        let tokenizer = self.policy.tokenizer();
        let share = crate::dist::share(batch.rollouts.len(), self.dist.world(), self.dist.rank());
        let mine = crate::task::judge_all(
            self.task,
            tokenizer,
            &batch.rollouts[share]
                .iter()
                .map(|r| (r.tokens.as_slice(), &problems[r.problem]))
                .collect::<Vec<_>>(),
        );
        if self.dist.world() == 1 {
            return Ok(mine);
        }
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Shared {
            text: String,
            verdict: Verdict,
            /// The score's bits (JSON has no NaN).
            score: u32,
            features: Vec<(String, bool)>,
        }
        let shared: Vec<Shared> = mine
            .into_iter()
            .map(|j| Shared {
                score: j.verdict.score.to_bits(),
                text: j.text,
                verdict: Verdict {
                    score: 0.0,
                    ..j.verdict
                },
                features: j
                    .features
                    .iter()
                    .map(|&(n, p)| (n.to_string(), p))
                    .collect(),
            })
            .collect();
        let bytes = serde_json::to_vec(&shared).expect("verdicts serialize");
        let what = format!("verdicts, step {step}, round {round}");
        let mut all = Vec::with_capacity(batch.rollouts.len());
        for (rank, part) in self
            .dist
            .all_gather_bytes(&bytes, &what)?
            .iter()
            .enumerate()
        {
            let part: Vec<Shared> = serde_json::from_slice(part).map_err(|e| {
                Error::Dist(format!(
                    "`{what}`: rank {rank} sent unreadable verdicts: {e}"
                ))
            })?;
            all.extend(part.into_iter().map(|s| {
                crate::task::Judged {
                    text: s.text,
                    verdict: Verdict {
                        score: f32::from_bits(s.score),
                        ..s.verdict
                    },
                    features: s
                        .features
                        .iter()
                        .map(|(n, p)| (crate::dist::intern(n), *p))
                        .collect(),
                }
            }));
        }
        Ok(all)
    }

    /// Samples `prompts_per_step` groups; round 0 uses the step's main streams, later rounds
    /// (dynamic sampling) their own.
    fn rollout(&self, step: usize, round: usize) -> Result<(Vec<Problem>, RolloutBatch)> {
        let rollout = &self.config.rollout;
        let purpose = |name: &str| match round {
            0 => name.to_string(),
            r => format!("{name}/round-{r}"),
        };
        let mut prompt_rng = rng::stream(self.seed, step as u64, &purpose("prompts"));
        let problems = self
            .task
            .sample_problems(&mut prompt_rng, rollout.prompts_per_step);
        let tokenizer = self.policy.tokenizer();
        let prompts = problems
            .iter()
            .map(|p| tokenizer.encode_prompt(&p.prompt))
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), rollout.group_size))
            .collect();
        // This rank samples its share of the groups, each row from the stream of its place in
        // the batch; the ranks then exchange their samples.
        let share = crate::dist::share(problems.len(), self.dist.world(), self.dist.rank());
        let mine = share.start * rollout.group_size..share.end * rollout.group_size;
        let mut streams: Vec<_> = mine
            .clone()
            .map(|row| rng::row_stream(self.seed, step as u64, &purpose("sample"), row as u64))
            .collect();
        let samples = self
            .policy
            .sample_rows(&rows[mine], &self.sampling(), &mut streams);
        let samples = gather_samples(
            self.dist.as_ref(),
            samples,
            &format!("rollout, step {step}, round {round}"),
        )?;
        let rollouts = samples
            .into_iter()
            .enumerate()
            .map(|(i, s)| Rollout {
                problem: i / rollout.group_size,
                group_id: i / rollout.group_size,
                tokens: s.tokens,
                behaviour_logprobs: s.logprobs,
                finished: s.finished,
            })
            .collect();
        Ok((problems, RolloutBatch { prompts, rollouts }))
    }

    /// Every response's context under every teacher pass, as the objective's
    /// [`teacher_rows`](crate::Objective::teacher_rows) builds them group by group, with the
    /// hint each adds, whether the row holds it and whether the pass scores it (every row of a
    /// distillation pass). Rows the objective skipped have an empty context.
    pub(super) fn teacher_contexts(
        &self,
        step: usize,
        problems: &[Problem],
        batch: &RolloutBatch,
        verdicts: &[Verdict],
    ) -> Result<Vec<TeacherContexts>> {
        let tokenizer = self.policy.tokenizer();
        let passes = &self.needs.teachers;
        let n = batch.rollouts.len();
        let group_size = n / problems.len();
        let texts: Vec<String> = batch
            .rollouts
            .iter()
            .map(|r| tokenizer.decode(&r.tokens))
            .collect();
        let ids: Vec<Vec<u32>> = batch.rollouts.iter().map(|r| r.tokens.clone()).collect();
        let mut out: Vec<TeacherContexts> = passes
            .iter()
            .map(|_| TeacherContexts::with_capacity(n))
            .collect();
        for (g, problem) in problems.iter().enumerate() {
            let members = g * group_size..(g + 1) * group_size;
            let group = TeacherGroup::new(
                problem,
                &batch.prompts[g],
                GroupResponses {
                    texts: &texts[members.clone()],
                    ids: &ids[members.clone()],
                    verdicts: &verdicts[members],
                },
                tokenizer,
                Some(self.task),
                (self.seed, step, g),
            );
            let rows = self.objective.teacher_rows(step, &group)?;
            check_rows(self.objective.name(), &rows, passes, group_size)?;
            self.check_teacher_lengths(passes, &rows, &ids[g * group_size..(g + 1) * group_size])?;
            for ((pass, list), contexts) in passes.iter().zip(rows).zip(out.iter_mut()) {
                for row in list {
                    contexts.scored.push(row.scored || pass.logits);
                    contexts.has_hint.push(row.has_hint);
                    contexts.hints.push(row.hint);
                    contexts.contexts.push(row.context);
                }
            }
        }
        Ok(out)
    }
}

impl Trainer<'_> {
    /// Every context a pass scores, with its response, fits the model's context window; the
    /// error names the pass and the lengths (a teacher reading a long demonstration can
    /// overflow it where the student's prompt did not).
    fn check_teacher_lengths(
        &self,
        passes: &[crate::teacher::TeacherPass],
        rows: &[Vec<crate::teacher::TeacherRow>],
        responses: &[Vec<u32>],
    ) -> Result<()> {
        let Some(max) = self.policy.max_context() else {
            return Ok(());
        };
        for (pass, list) in passes.iter().zip(rows) {
            for (row, response) in list.iter().zip(responses) {
                let (context, length) = (row.context.len(), response.len());
                if (row.scored || pass.logits) && context + length > max {
                    return Err(Error::Config(format!(
                        "objective `{}`: a teacher context of pass `{}` ({context} tokens) plus its response ({length} tokens) exceeds the model's context of {max} tokens\nhint: shorten what the teacher reads (the data set's solutions, the prompt template) or lower `rollout.max_new_tokens`",
                        self.objective.name(),
                        pass.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Every rank's samples, in rank order (the ranks' shares are contiguous: the batch's order).
fn gather_samples(
    dist: &dyn crate::dist::Collective,
    mine: Vec<Sample>,
    what: &str,
) -> Result<Vec<Sample>> {
    if dist.world() == 1 {
        return Ok(mine);
    }
    // Per sample: token count (u32), tokens (u32 each), log-probs (f32 each), finished (u8).
    let mut bytes = Vec::new();
    for s in &mine {
        if s.logprobs.len() != s.tokens.len() {
            return Err(Error::Dist(format!(
                "`{what}`: the policy returned {} log-probs for {} tokens\nhint: this is a bug in the policy's sampler: one log-prob per token",
                s.logprobs.len(),
                s.tokens.len()
            )));
        }
        bytes.extend((s.tokens.len() as u32).to_le_bytes());
        s.tokens.iter().for_each(|t| bytes.extend(t.to_le_bytes()));
        s.logprobs
            .iter()
            .for_each(|l| bytes.extend(l.to_le_bytes()));
        bytes.push(u8::from(s.finished));
    }
    let mut all = Vec::new();
    let words = |b: &[u8]| -> Vec<[u8; 4]> {
        b.chunks_exact(4)
            .map(|c| c.try_into().expect("4 bytes"))
            .collect()
    };
    for part in dist.all_gather_bytes(&bytes, what)? {
        let mut at = 0;
        while at < part.len() {
            let len = u32::from_le_bytes(words(&part[at..at + 4])[0]) as usize;
            let tokens = &part[at + 4..at + 4 + 4 * len];
            let logprobs = &part[at + 4 + 4 * len..at + 4 + 8 * len];
            all.push(Sample {
                tokens: words(tokens).into_iter().map(u32::from_le_bytes).collect(),
                logprobs: words(logprobs)
                    .into_iter()
                    .map(f32::from_le_bytes)
                    .collect(),
                finished: part[at + 4 + 8 * len] == 1,
            });
            at += 4 + 8 * len + 1;
        }
    }
    Ok(all)
}

/// The contexts of one teacher pass over a rollout batch, `[n]` each.
pub(super) struct TeacherContexts {
    pub(super) contexts: Vec<Vec<u32>>,
    pub(super) hints: Vec<String>,
    pub(super) has_hint: Vec<bool>,
    pub(super) scored: Vec<bool>,
}

impl TeacherContexts {
    fn with_capacity(n: usize) -> Self {
        Self {
            contexts: Vec::with_capacity(n),
            hints: Vec::with_capacity(n),
            has_hint: Vec::with_capacity(n),
            scored: Vec::with_capacity(n),
        }
    }
}
