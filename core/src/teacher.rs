//! Teacher passes: the responses of a step scored again by a teacher that reads privileged
//! context (a gold answer, a wrong answer, a group-mate's solution) before them.
//!
//! The objective owns the context, token by token: [`Objective::teacher_rows`] gets each group
//! of a step as a [`TeacherGroup`] (the problem, the rendered prompt ids, the responses as text
//! and ids, their verdicts) and returns, per declared [`TeacherPass`], one [`TeacherRow`] per
//! response: the context ids, the privileged text they add (for rollout dumps), whether the row
//! holds it and whether the pass scores it. The group's methods are the small toolbox the
//! references' constructions need: render a user message through the model's chat template
//! ([`TeacherGroup::user_message`]), append raw text or ids after the prompt's assistant header
//! ([`TeacherGroup::after_prompt`]), tokenize without special tokens
//! ([`TeacherGroup::encode`]), and remove think blocks ([`strip_think`]).
//!
//! Why the objective and not the task: each reference builds its teacher's context its own way
//! (CEPO splices `" " + answer` after the assistant header, SDPO writes a "Correct solution:"
//! user message, OPSD and RLSD their own templates), and the teacher's log-probs, so every
//! credit and distillation target, depend on exactly those tokens. The core keeps no list of
//! hint kinds. A task whose policies learned to read privileged text in a slot of their own
//! (the CPU world's `[h:936]` and `[s:…]`, the bandits' hint) offers it through
//! [`Task::hint_slot`]; [`TeacherGroup::task_hint`] renders it, and objectives use it in place
//! of their reference's construction where a task has one. A tokenizer without a chat template
//! (the CPU world's) renders a user message as `[bos] + encode(text)`: the same API, plain
//! concatenation.
//!
//! [`Objective::teacher_rows`]: crate::Objective::teacher_rows

use rand_chacha::ChaCha8Rng;

use crate::policy::Tokenizer;
use crate::rng;
use crate::task::{Problem, Task, Verdict};
use crate::{Error, Result};

/// Which weights score a teacher pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TeacherWeights {
    /// The policy that generated the batch (`θ_old`): RLSD in CEPO's repository, CEPO.
    Current,
    /// The frozen initial policy: OPSD's `--fixed_teacher`, RLSD's authors.
    Initial,
    /// An exponential moving average of the policy, `θ_T ← (1 − rate)·θ_T + rate·θ` after every
    /// optimizer step, starting from the initial policy: SDPO.
    Ema {
        /// The update rate.
        rate: f32,
    },
    /// A copy of the policy taken at the start and refreshed after every `every` optimizer
    /// steps (RLCSD's `teacher_mode: snapshot`, `teacher_sync_interval`).
    Snapshot {
        /// Optimizer steps between refreshes (at least 1).
        every: usize,
    },
}

/// Which array of a `zoo objective eval` batch ([`crate::probe`]) feeds a teacher pass, and
/// which says whether a row holds its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeInput {
    /// `teacher_logprobs` `[N][T]`; rows hold their hint where `hint_mask` `[N]` says so (all,
    /// without it).
    Teacher,
    /// `teacher_pos_logprobs` `[N][T]` (or `teacher_logprobs` when absent); rows as above.
    Positive,
    /// Slot `k` of `teacher_neg_logprobs`, `[N][K][T]` (or `[N][T]` for the one slot 0); rows
    /// hold their hint where `teacher_neg_valid` `[N][K]` says so (all, without it).
    Negative {
        /// The slot `k`.
        slot: usize,
    },
}

/// One declared teacher pass: the same responses scored after another context.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherPass {
    /// The pass's name in rollout dumps and docs, e.g. `gold-answer`, `wrong-answer-2`.
    pub name: String,
    /// Which weights score it.
    pub weights: TeacherWeights,
    /// This pass is the distillation teacher: its distribution over the vocabulary meets the
    /// student's in [`crate::Objective::token_divergence`], computed per micro-batch on the
    /// device. At most one pass may ask for it. Only the divergence reads it, in the update
    /// (for every response whose loss mask is not all zero), so the scoring stage skips it: its
    /// [`TeacherScores`] hold zero log-probs and no row marked `scored`, and `has_hint` as the
    /// rows say.
    pub logits: bool,
    /// Where `zoo objective eval` reads this pass's log-probs.
    pub probe_input: ProbeInput,
}

/// One group of a rollout batch as a teacher-context rule sees it, with the tools to build
/// token contexts for it.
#[derive(Clone, Copy)]
pub struct TeacherGroup<'a> {
    /// The problem the group answers.
    pub problem: &'a Problem,
    /// The student's context: the prompt as the policy read it (for a chat model the rendered
    /// template, ending with the assistant header).
    pub prompt: &'a [u32],
    /// The decoded responses (special tokens dropped), in batch order.
    pub responses: &'a [String],
    /// The response token ids (end-of-sequence included when sampled).
    pub response_ids: &'a [Vec<u32>],
    /// The verifier's verdict on each response.
    pub verdicts: &'a [Verdict],
    tokenizer: &'a dyn Tokenizer,
    task: Option<&'a dyn Task>,
    /// `(seed, step, group)`: the key of [`TeacherGroup::rng`].
    rng_key: (u64, u64, usize),
}

impl std::fmt::Debug for TeacherGroup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeacherGroup")
            .field("problem", self.problem)
            .field("prompt", &self.prompt)
            .field("responses", &self.responses)
            .field("verdicts", &self.verdicts)
            .finish_non_exhaustive()
    }
}

/// The per-response parts of a [`TeacherGroup`], in batch order.
#[derive(Debug, Clone, Copy)]
pub struct GroupResponses<'a> {
    /// The decoded responses.
    pub texts: &'a [String],
    /// Their token ids.
    pub ids: &'a [Vec<u32>],
    /// Their verdicts.
    pub verdicts: &'a [Verdict],
}

impl<'a> TeacherGroup<'a> {
    /// The group `group` of training step `step` of a run seeded `seed`. `task` offers its hint
    /// slots (`None`: a task without any).
    pub fn new(
        problem: &'a Problem,
        prompt: &'a [u32],
        responses: GroupResponses<'a>,
        tokenizer: &'a dyn Tokenizer,
        task: Option<&'a dyn Task>,
        (seed, step, group): (u64, usize, usize),
    ) -> Self {
        Self {
            problem,
            prompt,
            responses: responses.texts,
            response_ids: responses.ids,
            verdicts: responses.verdicts,
            tokenizer,
            task,
            rng_key: (seed, step as u64, group),
        }
    }

    /// The number of responses.
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Whether the group has no response.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    /// The verifier scores of the group's responses.
    pub fn rewards(&self) -> Vec<f32> {
        self.verdicts.iter().map(|v| v.score).collect()
    }

    /// `text` as the user message of a new conversation, through the model's chat template
    /// with the generation prompt (and the run's system message, if any), as the student's
    /// prompt is rendered: transformers' `apply_chat_template([..., {"role": "user", "content":
    /// text}], add_generation_prompt=True)` then encoding without special tokens. The run's
    /// system message (`model.chat.system`, none by default) comes first, as in the student's
    /// prompt; the references' teachers render the user message alone, so the two agree unless
    /// a run sets one. Without a chat template: `[bos] + encode(text)`.
    pub fn user_message(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode_prompt(text)
    }

    /// The student's prompt followed by `text` tokenized on its own without special tokens:
    /// text spliced after the assistant header, before the response (CEPO's `" " + answer`).
    pub fn after_prompt(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.after_prompt_ids(&self.encode(text)?))
    }

    /// The student's prompt followed by `ids`.
    pub fn after_prompt_ids(&self, ids: &[u32]) -> Vec<u32> {
        let mut context = Vec::with_capacity(self.prompt.len() + ids.len());
        context.extend_from_slice(self.prompt);
        context.extend_from_slice(ids);
        context
    }

    /// `text` tokenized without special tokens added (special-token strings in it are still
    /// read as those tokens, as transformers' `encode(text, add_special_tokens=False)` does).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// The tokenizer's padding id (a response's length in the references often ends at the
    /// first one).
    pub fn pad_id(&self) -> u32 {
        self.tokenizer.pad()
    }

    /// The text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids)
    }

    /// The task's own prompt with `text` in its hint slot `slot` ([`Task::hint_slot`]),
    /// rendered as the student's prompt is; `None` when the task has no such slot.
    pub fn task_hint(&self, slot: &str, text: &str) -> Result<Option<Vec<u32>>> {
        match self
            .task
            .and_then(|t| t.hint_slot(self.problem, slot, text))
        {
            Some(prompt) => Ok(Some(self.tokenizer.encode_prompt(&prompt)?)),
            None => Ok(None),
        }
    }

    /// A random stream for this group's choices (a random group-mate as the hint), the same on
    /// every call and keyed by the run's seed, the step and the group: reproducible, and equal
    /// on a resumed run.
    pub fn rng(&self) -> ChaCha8Rng {
        let (seed, step, group) = self.rng_key;
        rng::stream(seed, step, &format!("teacher-rows/group-{group}"))
    }
}

/// What one teacher pass reads for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeacherRow {
    /// The context ids the teacher reads before the response; empty for a row the pass does
    /// not score and built no context for.
    pub context: Vec<u32>,
    /// The privileged text the context adds beyond the prompt, as rollout dumps show it (CEPO:
    /// the answer as extracted, without the space the context adds); empty without one.
    pub hint: String,
    /// Whether the context holds the privileged text the pass asks for
    /// ([`crate::TeacherScores::has_hint`]).
    pub has_hint: bool,
    /// Whether the pass scores the response; the credit stage sees zeros for the others (a
    /// teacher pass costs a forward pass). A distillation pass ([`TeacherPass::logits`])
    /// scores every response whatever this says, so it needs every context.
    pub scored: bool,
}

impl TeacherRow {
    /// A scored row that reads `hint` through `context`.
    pub fn hinted(context: Vec<u32>, hint: impl Into<String>) -> Self {
        Self {
            context,
            hint: hint.into(),
            has_hint: true,
            scored: true,
        }
    }

    /// A scored row on the student's own prompt: the asked-for hint does not exist for it.
    pub fn plain(prompt: &[u32]) -> Self {
        Self {
            context: prompt.to_vec(),
            hint: String::new(),
            has_hint: false,
            scored: true,
        }
    }

    /// A row without a hint that the pass neither scores nor builds a context for.
    pub fn skipped() -> Self {
        Self {
            context: Vec::new(),
            hint: String::new(),
            has_hint: false,
            scored: false,
        }
    }

    /// This row, left unscored.
    pub fn unscored(self) -> Self {
        Self {
            scored: false,
            ..self
        }
    }
}

/// The output of one teacher pass over all `n` responses of a rollout batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherScores {
    /// Log-probs of the sampled tokens under the teacher context, `[n, t]`, at the sampling
    /// temperature; 0 at padded positions.
    pub logprobs: crate::TokenMatrix,
    /// Per response: whether its context holds the asked-for hint ([`TeacherRow::has_hint`]).
    pub has_hint: Vec<bool>,
    /// Per response: whether it was scored; the rows [`crate::Objective::teacher_rows`] left
    /// out hold zeros.
    pub scored: Vec<bool>,
}

/// `text` with every `<think>…</think>` block and the whitespace after it removed, as SDPO's
/// `re.sub(r'<think>.*?</think>\s*', '', text, flags=re.DOTALL)` does
/// (lasgroup/SDPO `verl/trainer/ppo/ray_trainer.py` L646-648): non-greedy, left to right; an
/// unclosed `<think>` stays.
pub fn strip_think(text: &str) -> String {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    // Python's `\s` on a str: Unicode whitespace, including the separators U+001C..U+001F that
    // Rust's `char::is_whitespace` leaves out (as in `py_strip`).
    let space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(OPEN) {
        let Some(close) = rest[open + OPEN.len()..].find(CLOSE) else {
            break;
        };
        out.push_str(&rest[..open]);
        let after = &rest[open + OPEN.len() + close + CLOSE.len()..];
        rest = after.trim_start_matches(space);
    }
    out.push_str(rest);
    out
}

/// `text` without leading and trailing whitespace as Python's `str.strip()` sees it (and
/// Jinja's `trim` filter): Unicode whitespace and the separators U+001C..U+001F.
pub fn py_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// The teacher rows of one group for every pass, checked against the pass count and the group
/// size; `name` is the objective's, for the message.
pub fn check_rows(
    name: &str,
    rows: &[Vec<TeacherRow>],
    passes: &[TeacherPass],
    group_size: usize,
) -> Result<()> {
    if rows.len() != passes.len() {
        return Err(Error::Config(format!(
            "objective `{name}` returned teacher rows for {} passes but declares {}\nhint: `teacher_rows` returns one list of rows per declared pass, in order",
            rows.len(),
            passes.len()
        )));
    }
    for (pass, list) in passes.iter().zip(rows) {
        if list.len() != group_size {
            return Err(Error::Config(format!(
                "objective `{name}` returned {} teacher rows for a group of {group_size} (pass `{}`)\nhint: `teacher_rows` returns one row per response of the group",
                list.len(),
                pass.name
            )));
        }
        if let Some(row) = list
            .iter()
            .find(|r| r.context.is_empty() && (r.scored || pass.logits))
        {
            return Err(Error::Config(format!(
                "objective `{name}` asks pass `{}` to score a row without a context (hint {:?})\nhint: build a context for every scored row (and every row of a distillation pass), e.g. `TeacherRow::plain(group.prompt)`",
                pass.name, row.hint
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_think_removes_blocks_and_the_space_after_them() {
        assert_eq!(strip_think("<think>\nplan\n</think>\n\nx = 2"), "x = 2");
        assert_eq!(
            strip_think("a<think>1</think> b<think>2</think>\tc"),
            "ab".to_string() + "c"
        );
        // Non-greedy: the first closing tag ends the block, nested opening tags included.
        assert_eq!(
            strip_think("<think>a<think>b</think>c</think>d"),
            "c</think>d"
        );
        // An unclosed block stays, and so does everything after it.
        assert_eq!(strip_think("x <think>open"), "x <think>open");
        assert_eq!(strip_think("no blocks \n"), "no blocks \n");
        // Whitespace before a block is kept.
        assert_eq!(strip_think("keep \n<think>x</think>\u{1c} y"), "keep \ny");
    }

    #[test]
    fn rows_of_the_wrong_shape_or_without_contexts_are_refused_by_name() {
        let pass = |name: &str, logits| TeacherPass {
            name: name.into(),
            weights: TeacherWeights::Current,
            logits,
            probe_input: ProbeInput::Teacher,
        };
        let passes = [pass("gold", false), pass("distilled", true)];
        let hinted = TeacherRow::hinted(vec![1, 2], "x");
        let ok = vec![
            vec![hinted.clone(), TeacherRow::skipped()],
            vec![hinted.clone(); 2],
        ];
        assert!(check_rows("demo", &ok, &passes, 2).is_ok());
        let error = |rows: Vec<Vec<TeacherRow>>| {
            check_rows("demo", &rows, &passes, 2)
                .unwrap_err()
                .to_string()
        };
        assert!(error(vec![vec![hinted.clone(); 2]]).contains("for 1 passes but declares 2"));
        assert!(
            error(vec![vec![hinted.clone(); 2], vec![hinted.clone()]]).contains("pass `distilled`")
        );
        // A scored row needs a context; so does every row of a distillation pass.
        let scored_empty = TeacherRow {
            context: Vec::new(),
            ..hinted.clone()
        };
        assert!(
            error(vec![
                vec![scored_empty, hinted.clone()],
                vec![hinted.clone(); 2]
            ])
            .contains("without a context")
        );
        assert!(
            error(vec![
                vec![hinted.clone(); 2],
                vec![hinted.clone(), TeacherRow::skipped()]
            ])
            .contains("pass `distilled`")
        );
    }

    #[test]
    fn py_strip_strips_what_python_strips() {
        assert_eq!(py_strip("\u{1c} \t x y\n\u{3000}"), "x y");
        assert_eq!(py_strip(""), "");
    }
}
