//! Teacher contexts, token by token, against each reference's own construction.
//!
//! `scripts/make-teacher-context-fixtures.py` builds every shipped objective's teacher contexts
//! for one group of responses the way its reference's code does (transformers' tokenizer and
//! `apply_chat_template`, the references' templates and splices), and commits the ids under
//! `tests/fixtures/teacher-contexts/`. These tests build the same group through zoo's
//! `Objective::teacher_rows` and compare: on the committed tiny tokenizer with a ChatML
//! template here, on SmolLM2-135M-Instruct's real template in the real-model stage.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use zoo::zoo_core::objective::BuildContext;
use zoo::zoo_core::policy::Tokenizer;
use zoo::zoo_core::teacher::GroupResponses;
use zoo::zoo_core::{ObjectiveConfig, Problem, TeacherGroup, Verdict};
use zoo::zoo_llm::HfTokenizer;

#[derive(Deserialize)]
struct Fixture {
    problem: Problem,
    responses: Vec<ResponseFixture>,
    prompt_ids: Vec<u32>,
    response_ids: Vec<Vec<u32>>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct ResponseFixture {
    text: String,
    score: f32,
    extracted: Option<String>,
    parsed: bool,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    algo: String,
    config: Map<String, Value>,
    step: usize,
    /// Per response, what its passes hold.
    rows: Vec<Vec<Check>>,
}

/// The passes named hold, as a set, `choose` distinct contexts out of `contexts`.
#[derive(Deserialize)]
struct Check {
    passes: Vec<String>,
    choose: usize,
    contexts: Vec<Vec<u32>>,
    hint: Option<String>,
}

fn fixture(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/teacher-contexts")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every case of `fixture` through zoo's objectives on `tokenizer`; returns how many contexts
/// were compared.
fn check(tokenizer: &HfTokenizer, fixture: &Fixture) -> usize {
    zoo::link_all();
    // The student's side first: zoo renders the prompt and encodes the responses as
    // transformers does.
    assert_eq!(
        tokenizer.encode_prompt(&fixture.problem.prompt).unwrap(),
        fixture.prompt_ids,
        "the student's prompt"
    );
    let texts: Vec<String> = fixture.responses.iter().map(|r| r.text.clone()).collect();
    for (text, ids) in texts.iter().zip(&fixture.response_ids) {
        let mut encoded = tokenizer.encode(text).unwrap();
        encoded.push(tokenizer.eos());
        assert_eq!(&encoded, ids, "response {text:?}");
    }
    let verdicts: Vec<Verdict> = fixture
        .responses
        .iter()
        .map(|r| Verdict {
            score: r.score,
            correct: r.score >= 1.0,
            extracted: r.extracted.clone(),
            parsed: r.parsed,
            reason: String::new(),
        })
        .collect();
    let mut compared = 0;
    for case in &fixture.cases {
        let mut config = case.config.clone();
        config.insert("algo".into(), json!(case.algo));
        let config: Box<dyn ObjectiveConfig> =
            serde_json::from_value(Value::Object(config)).unwrap();
        let objective = config
            .build(&BuildContext {
                max_new_tokens: 64,
                group_size: texts.len(),
                steps: 30,
                temperature: 1.0,
                evaluation: false,
            })
            .unwrap();
        let group = TeacherGroup::new(
            &fixture.problem,
            &fixture.prompt_ids,
            GroupResponses {
                texts: &texts,
                ids: &fixture.response_ids,
                verdicts: &verdicts,
            },
            tokenizer,
            // A data set has no hint slot of its own.
            None,
            (0, case.step, 0),
        );
        let rows = objective.teacher_rows(case.step, &group).unwrap();
        let names: Vec<String> = objective
            .needs()
            .teachers
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for (i, checks) in case.rows.iter().enumerate() {
            for check in checks {
                let found: Vec<(&Vec<u32>, &str)> = check
                    .passes
                    .iter()
                    .map(|name| {
                        let pass = names.iter().position(|n| n == name).unwrap_or_else(|| {
                            panic!("{}: no pass `{name}` in {names:?}", case.name)
                        });
                        (&rows[pass][i].context, rows[pass][i].hint.as_str())
                    })
                    .filter(|(context, _)| !context.is_empty())
                    .collect();
                let what = format!("{}: response {i}, passes {:?}", case.name, check.passes);
                assert_eq!(found.len(), check.choose, "{what}: contexts built");
                for (k, (context, hint)) in found.iter().enumerate() {
                    assert!(
                        check.contexts.contains(context),
                        "{what}: context {k} is not the reference's:\n  zoo:  {}\n  want: {}",
                        tokenizer.decode(context),
                        check
                            .contexts
                            .first()
                            .map_or(String::new(), |c| tokenizer.decode(c))
                    );
                    assert!(
                        !found[..k].iter().any(|(c, _)| c == context),
                        "{what}: a sibling read twice"
                    );
                    if let (1, Some(want)) = (check.choose, &check.hint) {
                        assert_eq!(hint, want, "{what}: hint");
                    }
                    compared += 1;
                }
            }
        }
    }
    compared
}

fn tiny_tokenizer() -> HfTokenizer {
    let dir: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/tokenizer/tiny");
    HfTokenizer::from_dir(&dir, &json!({"eos_token_id": 2}), 320).unwrap()
}

#[test]
fn teacher_contexts_equal_the_references_construction_under_a_chat_template() {
    let compared = check(&tiny_tokenizer(), &fixture("tiny"));
    // 9 cases over 4 responses, RLCSD's rows with pairs counting one context per sibling.
    assert!(compared >= 30, "only {compared} contexts compared");
}

#[test]
#[ignore = "needs SmolLM2: export ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)"]
fn smollm2_teacher_contexts_equal_the_references_construction() {
    let path = std::env::var_os("ZOO_SMOLLM2_GGUF").expect(
        "ZOO_SMOLLM2_GGUF is not set: run `export ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)`",
    );
    let gguf = zoo::zoo_llm::gguf::Gguf::open(Path::new(&path)).unwrap();
    let tokenizer = HfTokenizer::from_gguf(&gguf.tokenizer().unwrap(), 49152).unwrap();
    let compared = check(&tokenizer, &fixture("smollm2"));
    assert!(compared >= 30, "only {compared} contexts compared");
}
