//! Rollout: sample groups, verify them, keep the groups dynamic sampling accepts, and build
//! the teacher contexts of a step.

use crate::batch::{Rollout, RolloutBatch};
use crate::metrics::Metrics;
use crate::objective::{Shortfall, TeacherContext, WrongAnswerRule};
use crate::rng;
use crate::task::{Hint, Problem, Verdict};
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
        let tokenizer = self.policy.tokenizer();
        let mut kept = Collected {
            problems: Vec::new(),
            batch: RolloutBatch {
                prompts: Vec::new(),
                rollouts: Vec::new(),
            },
            verdicts: Vec::new(),
        };
        let (mut generated, mut correct_count, mut rounds_used) = (0usize, 0usize, 0usize);
        for round in 0..rounds {
            rounds_used += 1;
            let (problems, batch) = self.rollout(step, round)?;
            for (g, problem) in problems.into_iter().enumerate() {
                let members = &batch.rollouts[g * group_size..(g + 1) * group_size];
                let verdicts: Vec<Verdict> = members
                    .iter()
                    .map(|r| {
                        let text = tokenizer.decode(&r.tokens);
                        self.task.verifier().verify(&text, &problem)
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
        let mut sample_rng = rng::stream(self.seed, step as u64, &purpose("sample"));
        let samples = self.policy.sample(&rows, &self.sampling(), &mut sample_rng);
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

    /// The context of every response under a teacher `context`, and whether it holds its hint.
    pub(super) fn teacher_contexts(
        &self,
        context: TeacherContext,
        problems: &[Problem],
        batch: &RolloutBatch,
        verdicts: &[Verdict],
    ) -> Result<(Vec<Vec<u32>>, Vec<bool>)> {
        let tokenizer = self.policy.tokenizer();
        let n = batch.rollouts.len();
        let group_size = n / problems.len();
        let texts: Vec<String> = batch
            .rollouts
            .iter()
            .map(|r| tokenizer.decode(&r.tokens))
            .collect();
        let mut contexts = Vec::with_capacity(n);
        let mut has_hint = Vec::with_capacity(n);
        for (g, problem) in problems.iter().enumerate() {
            let members: Vec<usize> = (g * group_size..(g + 1) * group_size).collect();
            let gold = Hint::Answer(problem.answer.clone());
            // Group-level hints (CEPO's wrong answer) are computed once per group.
            let wrong = match context {
                TeacherContext::WrongAnswer(rule) => wrong_answer(rule, &members, verdicts, &texts),
                _ => None,
            };
            for &i in &members {
                let (hint, found) = match context {
                    TeacherContext::GoldAnswer => (Some(gold.clone()), true),
                    TeacherContext::Solution => {
                        (Some(Hint::Solution(problem.solution.clone())), true)
                    }
                    TeacherContext::WrongAnswer(_) => match &wrong {
                        Some(w) => (Some(Hint::Answer(w.clone())), true),
                        None => (Some(gold.clone()), false),
                    },
                    TeacherContext::SuccessfulGroupMate { threshold } => {
                        match successful_group_mate(i, &members, verdicts, threshold) {
                            Some(j) => (Some(Hint::Solution(texts[j].clone())), true),
                            None => (None, false),
                        }
                    }
                };
                let prompt = match hint {
                    Some(hint) => self.task.hinted_prompt(problem, &hint),
                    None => problem.prompt.clone(),
                };
                contexts.push(tokenizer.encode_prompt(&prompt)?);
                has_hint.push(found);
            }
        }
        Ok((contexts, has_hint))
    }
}

/// SDPO's demonstration for response `i`: the first response of its group, other than `i`,
/// whose score reaches `threshold` (`dont_reprompt_on_self_success`).
fn successful_group_mate(
    i: usize,
    members: &[usize],
    verdicts: &[Verdict],
    threshold: f32,
) -> Option<usize> {
    members
        .iter()
        .copied()
        .find(|&j| j != i && verdicts[j].score >= threshold)
}

/// The wrong answer of one group's negative teacher, or `None` when no rejected response
/// (score < 0.5, as in the CEPO reference) yields one.
fn wrong_answer(
    rule: WrongAnswerRule,
    members: &[usize],
    verdicts: &[Verdict],
    texts: &[String],
) -> Option<String> {
    let rejected = members.iter().copied().filter(|&i| verdicts[i].score < 0.5);
    match rule {
        WrongAnswerRule::MostFrequent => {
            // (answer, count, lowest score, first index)
            let mut tally: Vec<(&str, usize, f32, usize)> = Vec::new();
            for i in rejected {
                // Only an answer the verifier could parse is a wrong answer: unparsable text
                // after the answer marker is no answer at all.
                let Some(answer) = verdicts[i]
                    .extracted
                    .as_deref()
                    .filter(|a| !a.is_empty() && verdicts[i].parsed)
                else {
                    continue;
                };
                match tally.iter_mut().find(|(a, ..)| *a == answer) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 = entry.2.min(verdicts[i].score);
                    }
                    None => tally.push((answer, 1, verdicts[i].score, i)),
                }
            }
            tally
                .into_iter()
                .min_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)).then(a.3.cmp(&b.3)))
                .map(|(answer, ..)| answer.to_string())
        }
        WrongAnswerRule::LowestScore => rejected
            .min_by(|&a, &b| {
                verdicts[a]
                    .score
                    .total_cmp(&verdicts[b].score)
                    .then(a.cmp(&b))
            })
            .map(|i| match verdicts[i].extracted.as_deref() {
                Some(answer) if !answer.is_empty() => answer.to_string(),
                _ => texts[i].chars().take(50).collect(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(score: f32, extracted: Option<&str>) -> Verdict {
        Verdict {
            score,
            correct: score >= 1.0,
            extracted: extracted.map(str::to_string),
            parsed: extracted.is_some(),
            reason: String::new(),
        }
    }

    #[test]
    fn wrong_answer_is_the_most_frequent_extracted_one() {
        let verdicts = [
            verdict(1.0, Some("42")),
            verdict(0.0, Some("41")),
            verdict(0.0, None),
            verdict(0.0, Some("43")),
            verdict(0.0, Some("43")),
            verdict(0.2, Some("41")),
        ];
        let texts: Vec<String> = (0..6).map(|i| format!("text {i}")).collect();
        let members: Vec<usize> = (0..6).collect();
        let pick = |rule, members: &[usize]| wrong_answer(rule, members, &verdicts, &texts);
        // 41 and 43 both appear twice; 43's lowest score (0.0) ties 41's (0.0): first wins.
        assert_eq!(
            pick(WrongAnswerRule::MostFrequent, &members).as_deref(),
            Some("41")
        );
        assert_eq!(
            pick(WrongAnswerRule::MostFrequent, &[0, 3, 4, 5]).as_deref(),
            Some("43")
        );
        // Ties on count: the lower score wins.
        assert_eq!(
            pick(WrongAnswerRule::MostFrequent, &[5, 3]).as_deref(),
            Some("43")
        );
        // Only correct or answer-less rejected responses: no wrong answer.
        assert_eq!(pick(WrongAnswerRule::MostFrequent, &[0, 2]), None);
        // Text the verifier extracted but could not parse is no answer either.
        let unparsed = [
            Verdict {
                parsed: false,
                ..verdict(0.0, Some("4x"))
            },
            Verdict {
                parsed: false,
                ..verdict(0.0, Some("4x"))
            },
            verdict(0.0, Some("44")),
        ];
        assert_eq!(
            wrong_answer(WrongAnswerRule::MostFrequent, &[0, 1, 2], &unparsed, &texts).as_deref(),
            Some("44")
        );
        assert_eq!(
            wrong_answer(WrongAnswerRule::MostFrequent, &[0, 1], &unparsed, &texts),
            None
        );
        // The reference rule: the lowest score, first on ties, its text when it has no answer.
        assert_eq!(
            pick(WrongAnswerRule::LowestScore, &[0, 2, 3]).as_deref(),
            Some("text 2")
        );
        assert_eq!(
            pick(WrongAnswerRule::LowestScore, &[5, 3]).as_deref(),
            Some("43")
        );
        assert_eq!(pick(WrongAnswerRule::LowestScore, &[0]), None);
    }

    #[test]
    fn group_mate_is_the_first_other_success() {
        let verdicts = [verdict(1.0, None), verdict(0.0, None), verdict(1.0, None)];
        let members = [0, 1, 2];
        assert_eq!(successful_group_mate(0, &members, &verdicts, 0.5), Some(2));
        assert_eq!(successful_group_mate(1, &members, &verdicts, 0.5), Some(0));
        assert_eq!(successful_group_mate(2, &members, &verdicts, 0.5), Some(0));
        let lone = [verdict(1.0, None), verdict(0.0, None)];
        assert_eq!(successful_group_mate(0, &[0, 1], &lone, 0.5), None);
    }
}
