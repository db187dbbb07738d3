//! A task source over JSONL data sets (`--task jsonl`), e.g. the files in `../shared/datasets/`:
//! one JSON object per line with `problem` and `answer` (and optionally `id`, `solution`,
//! `source`). Training problems come from `data.train`, the held-out set from `data.eval`;
//! prompts are `data.template` with `{problem}` replaced; answers are checked by the verifier
//! named in `data.verifier` (default `math`).
//!
//! ```toml
//! task = "jsonl"
//! [data]
//! train = ["../shared/datasets/gsm8k-train.jsonl"]
//! eval = ["../shared/datasets/math500.jsonl"]
//! template = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
//! ```

use std::path::{Path, PathBuf};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use zoo_core::registry::{self, TaskEntry};
use zoo_core::task::SftExample;
use zoo_core::{Error, Problem, Result, Task, Verifier};

/// The `[data]` settings of `--task jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// Training files.
    pub train: Vec<PathBuf>,
    /// Held-out files (default: none).
    #[serde(default)]
    pub eval: Vec<PathBuf>,
    /// The prompt; `{problem}` is replaced by the problem text.
    #[serde(default = "default_template")]
    pub template: String,
    /// The verifier's registry name.
    #[serde(default = "default_verifier")]
    pub verifier: String,
    /// The response length cap in tokens.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
}

fn default_template() -> String {
    "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}.".into()
}

fn default_verifier() -> String {
    "math".into()
}

fn default_max_new_tokens() -> usize {
    1024
}

/// One line of a data file.
#[derive(Debug, Deserialize)]
struct Row {
    problem: String,
    answer: String,
    #[serde(default)]
    solution: Option<String>,
}

/// Problems read from JSONL files.
pub struct JsonlTask {
    config: JsonlConfig,
    train: Vec<Problem>,
    heldout: Vec<Problem>,
    verifier: Box<dyn Verifier>,
}

/// Reads every problem of `path`; errors name the file and line.
pub fn read_problems(path: &Path, template: &str) -> Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(line).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", n + 1),
            hint: "each line must be a JSON object with `problem` and `answer` strings".into(),
        })?;
        problems.push(Problem {
            prompt: template.replace("{problem}", &row.problem),
            question: row.problem,
            answer: row.answer,
            solution: row.solution.unwrap_or_default(),
        });
    }
    if problems.is_empty() {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: "no problems".into(),
            hint: "give a JSONL file with one problem per line".into(),
        });
    }
    Ok(problems)
}

impl JsonlTask {
    /// Reads the files of `config`.
    pub fn open(config: JsonlConfig) -> Result<Self> {
        if !config.template.contains("{problem}") {
            return Err(Error::Config(
                "`data.template` must contain `{problem}`".into(),
            ));
        }
        if config.train.is_empty() {
            return Err(Error::Config(
                "`data.train` lists no file\nhint: e.g. `--set 'data.train=[\"../shared/datasets/gsm8k-train.jsonl\"]'`".into(),
            ));
        }
        let verifier = (registry::verifier(&config.verifier)?.build)();
        let read_all = |paths: &[PathBuf]| -> Result<Vec<Problem>> {
            let mut all = Vec::new();
            for path in paths {
                all.extend(read_problems(path, &config.template)?);
            }
            Ok(all)
        };
        let train = read_all(&config.train)?;
        let heldout = read_all(&config.eval)?;
        Ok(Self {
            config,
            train,
            heldout,
            verifier,
        })
    }

    /// The training problems.
    pub fn train(&self) -> &[Problem] {
        &self.train
    }
}

impl Task for JsonlTask {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn sample_problems(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<Problem> {
        (0..n)
            .map(|_| self.train[rng.random_range(0..self.train.len())].clone())
            .collect()
    }

    fn heldout(&self) -> &[Problem] {
        &self.heldout
    }

    fn verifier(&self) -> &dyn Verifier {
        self.verifier.as_ref()
    }

    /// The reference solution when the data set has one, else the boxed answer.
    fn sft_example(&self, rng: &mut ChaCha8Rng) -> SftExample {
        let problem = &self.train[rng.random_range(0..self.train.len())];
        SftExample {
            context: problem.prompt.clone(),
            target: if problem.solution.is_empty() {
                format!("\\boxed{{{}}}", problem.answer)
            } else {
                problem.solution.clone()
            },
        }
    }

    fn max_new_tokens(&self) -> usize {
        self.config.max_new_tokens
    }

    /// How a response answers, for any data set:
    /// - `no_answer`: the verifier finds no answer at all (with the `math` verifier's last-number
    ///   fallback: a response without a single number);
    /// - `no_work`: no calculation is written (no digit, operator `+ - * × x / ÷`, digit): an
    ///   answer without its derivation, the shortcut a teacher that reads the reference solution
    ///   may take and a student may copy (the CPU world's `chainless`);
    /// - `echoes_solution`: it repeats [`ECHO_CHARS`] or more consecutive characters of the
    ///   problem's reference solution, which only a teacher sees: the phrasing of a privileged
    ///   context carried into the student (the CPU world's `misread` is the same kind of import).
    ///   A solution's closing formula counts (`The answer is \boxed{38}.` is 25 characters): a
    ///   signal of import where the student's prompt does not ask for that format.
    fn response_features(&self, response: &str, problem: &Problem) -> Vec<(&'static str, bool)> {
        let no_answer = self.verifier.verify(response, problem).extracted.is_none();
        let echoes = !problem.solution.is_empty()
            && longest_common_substring(response.as_bytes(), problem.solution.as_bytes())
                >= ECHO_CHARS;
        vec![
            ("no_answer", no_answer),
            ("no_work", !writes_a_calculation(response)),
            ("echoes_solution", echoes),
        ]
    }
}

/// The shortest run of a reference solution's characters that `echoes_solution` counts: longer
/// than any equation of the word problems (`23 + 15 = 38.` is 13), as long as their closing
/// `The answer is \boxed{38}.` (25).
pub const ECHO_CHARS: usize = 20;

/// Whether `text` writes a calculation: a digit, then (after spaces) an operator, then (after
/// spaces) a digit.
fn writes_a_calculation(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let skip_spaces = |mut i: usize| {
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        i
    };
    (0..chars.len()).any(|i| {
        if !chars[i].is_ascii_digit() {
            return false;
        }
        let op = skip_spaces(i + 1);
        matches!(chars.get(op), Some('+' | '-' | '*' | '×' | 'x' | '/' | '÷'))
            && chars
                .get(skip_spaces(op + 1))
                .is_some_and(|c| c.is_ascii_digit())
    })
}

/// The length of the longest common run of bytes of `a` and `b` (dynamic programming over one
/// row, O(|a|·|b|) time and O(|b|) memory).
fn longest_common_substring(a: &[u8], b: &[u8]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    let mut best = 0;
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            current[j + 1] = if x == y { previous[j] + 1 } else { 0 };
            best = best.max(current[j + 1]);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    best
}

zoo_core::inventory::submit! {
    TaskEntry {
        name: "jsonl",
        summary: "problems from JSONL files ([data] train, eval, template, verifier)",
        build: |data| {
            let config: JsonlConfig = toml::Value::Table(data.clone()).try_into().map_err(|e| {
                Error::Config(format!(
                    "`--task jsonl` reads its files from `[data]`: {e}\nhint: `--set 'data.train=[\"FILE.jsonl\"]'`"
                ))
            })?;
            Ok(Box::new(JsonlTask::open(config)?))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zoo-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn jsonl_task_reads_templates_samples_and_verifies() {
        let train = write(
            "train.jsonl",
            "{\"id\": \"t-0\", \"problem\": \"1+1?\", \"answer\": \"2\", \"solution\": \"1+1=2\\n#### 2\", \"source\": \"s\"}\n{\"problem\": \"2+2?\", \"answer\": \"4\"}\n",
        );
        let eval = write(
            "eval.jsonl",
            "{\"problem\": \"3+3?\", \"answer\": \"6\", \"solution\": null}\n",
        );
        let task = JsonlTask::open(JsonlConfig {
            train: vec![train],
            eval: vec![eval],
            template: "Q: {problem} A:".into(),
            verifier: "math".into(),
            max_new_tokens: 64,
        })
        .unwrap();
        assert_eq!(task.train().len(), 2);
        assert_eq!(task.heldout()[0].prompt, "Q: 3+3? A:");
        let sample = task.sample_problems(&mut ChaCha8Rng::seed_from_u64(0), 16);
        assert!(sample.iter().all(|p| p.prompt.starts_with("Q: ")));
        assert!(sample.iter().any(|p| p.answer == "2") && sample.iter().any(|p| p.answer == "4"));
        let problem = &task.heldout()[0];
        assert!(task.verifier().verify("so \\boxed{6}", problem).correct);
        assert!(!task.verifier().verify("so \\boxed{7}", problem).correct);
        // The problem statement alone is kept for teacher templates; a data set has no hint
        // slot of its own (objectives build their references' teacher contexts).
        assert_eq!(problem.question, "3+3?");
        assert_eq!(task.hint_slot(problem, "answer", "6"), None);
    }

    #[test]
    fn response_features_flag_missing_answers_missing_work_and_echoed_solutions() {
        let train = write(
            "features.jsonl",
            "{\"problem\": \"Mia has 23 apples and buys 15 more. How many?\", \"answer\": \"38\", \"solution\": \"23 + 15 = 38. The answer is \\\\boxed{38}.\"}\n",
        );
        let task = JsonlTask::open(JsonlConfig {
            train: vec![train],
            eval: vec![],
            template: default_template(),
            verifier: "math".into(),
            max_new_tokens: 64,
        })
        .unwrap();
        let problem = &task.train()[0];
        assert_eq!(problem.solution, "23 + 15 = 38. The answer is \\boxed{38}.");
        let features = |response: &str| -> Vec<bool> {
            task.response_features(response, problem)
                .into_iter()
                .map(|(_, on)| on)
                .collect()
        };
        // [no_answer, no_work, echoes_solution]
        assert_eq!(
            features("Mia has 23+15 = 38 apples. So \\boxed{38}"),
            [false, false, false]
        );
        assert_eq!(
            features("She has 23 × 15 apples, more or less"),
            [false, false, false]
        );
        assert_eq!(features("3 x 6 = 18 apples"), [false, false, false]);
        assert_eq!(features("\\boxed{38}"), [false, true, false]);
        assert_eq!(
            features("Let me think about the apples"),
            [true, true, false]
        );
        assert_eq!(
            features("23 + 15 = 38. The answer is \\boxed{38}."),
            [false, false, true]
        );
        assert_eq!(features("The answer is \\boxed{38}."), [false, true, true]);
        // A minus sign that is a hyphen between words is no calculation.
        assert_eq!(features("a well-known sum: 38"), [false, true, false]);
        assert_eq!(longest_common_substring(b"abcdef", b"zcdez"), 3);
        assert_eq!(longest_common_substring(b"", b"abc"), 0);
    }

    #[test]
    fn bad_jsonl_input_names_the_file_and_line() {
        let path = write(
            "bad.jsonl",
            "{\"problem\": \"x\", \"answer\": \"1\"}\nnot json\n",
        );
        let err = read_problems(&path, "{problem}").err().unwrap().to_string();
        assert!(err.contains("bad.jsonl") && err.contains("line 2"), "{err}");
        let missing = JsonlConfig {
            train: vec!["/nonexistent/x.jsonl".into()],
            eval: vec![],
            template: default_template(),
            verifier: "math".into(),
            max_new_tokens: 8,
        };
        let err = JsonlTask::open(missing).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/x.jsonl"), "{err}");
        let no_slot = JsonlConfig {
            train: vec![path],
            eval: vec![],
            template: "no slot".into(),
            verifier: "math".into(),
            max_new_tokens: 8,
        };
        assert!(
            JsonlTask::open(no_slot)
                .err()
                .unwrap()
                .to_string()
                .contains("{problem}")
        );
    }
}
