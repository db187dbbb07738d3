//! Helpers for objectives' tests: a byte tokenizer without a chat template and a group of
//! responses to hand to [`crate::Objective::teacher_rows`].
//!
//! ```
//! use zoo_core::testing::GroupFixture;
//! use zoo_core::{Problem, Verdict};
//!
//! let problem = Problem {
//!     prompt: "1+1=".into(),
//!     question: "1+1=".into(),
//!     answer: "2".into(),
//!     solution: "=>2".into(),
//! };
//! let fixture = GroupFixture::new(problem, &[("=>2", 1.0, Some("2")), ("=>3", 0.0, Some("3"))]);
//! let group = fixture.group(1);
//! // Without a chat template a user message is `[bos] + bytes`.
//! assert_eq!(group.user_message("ab").unwrap(), vec![256, 97, 98]);
//! assert_eq!(group.after_prompt(" 2").unwrap(), [group.prompt, &[32, 50]].concat());
//! ```

use crate::Result;
use crate::policy::Tokenizer;
use crate::task::{Problem, Verdict};
use crate::teacher::{GroupResponses, TeacherGroup};

/// Text as its UTF-8 bytes (ids 0-255), with BOS 256, EOS 257 and PAD 258; no chat template,
/// so a prompt is `[bos] + bytes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }

    fn decode(&self, tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .filter_map(|&t| u8::try_from(t).ok())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn bos(&self) -> u32 {
        256
    }

    fn eos(&self) -> u32 {
        257
    }

    fn pad(&self) -> u32 {
        258
    }

    fn vocab_size(&self) -> usize {
        259
    }
}

/// One group of responses to `problem` with their verdicts, owned, to build a
/// [`TeacherGroup`] from (with [`ByteTokenizer`] and no task hint slots).
#[derive(Debug, Clone)]
pub struct GroupFixture {
    /// The problem.
    pub problem: Problem,
    /// The student's prompt ids.
    pub prompt: Vec<u32>,
    /// The responses.
    pub texts: Vec<String>,
    /// Their ids (bytes, then EOS).
    pub ids: Vec<Vec<u32>>,
    /// Their verdicts.
    pub verdicts: Vec<Verdict>,
}

impl GroupFixture {
    /// Responses given as `(text, score, extracted answer)`; a response is correct iff its
    /// score is at least 1, and its answer parsed iff one was extracted.
    pub fn new(problem: Problem, responses: &[(&str, f32, Option<&str>)]) -> Self {
        let tokenizer = ByteTokenizer;
        let prompt = tokenizer
            .encode_prompt(&problem.prompt)
            .expect("bytes always encode");
        let texts = responses.iter().map(|r| r.0.to_string()).collect();
        let ids = responses
            .iter()
            .map(|r| {
                let mut ids = tokenizer.encode(r.0).expect("bytes always encode");
                ids.push(tokenizer.eos());
                ids
            })
            .collect();
        let verdicts = responses
            .iter()
            .map(|&(_, score, extracted)| Verdict {
                score,
                correct: score >= 1.0,
                extracted: extracted.map(str::to_string),
                parsed: extracted.is_some(),
                reason: String::new(),
            })
            .collect();
        Self {
            problem,
            prompt,
            texts,
            ids,
            verdicts,
        }
    }

    /// The group at training step `step` (seed 0, group 0).
    pub fn group(&self, step: usize) -> TeacherGroup<'_> {
        TeacherGroup::new(
            &self.problem,
            &self.prompt,
            GroupResponses {
                texts: &self.texts,
                ids: &self.ids,
                verdicts: &self.verdicts,
            },
            &ByteTokenizer,
            None,
            (0, step, 0),
        )
    }
}
