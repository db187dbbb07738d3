//! `zoo verify`: one verdict per input line, in order; bad lines get a verdict, not an abort.

use serde_json::Value;

#[test]
fn verify_writes_one_verdict_per_line_and_survives_bad_lines() {
    let dir = std::env::temp_dir().join(format!("zoo-it-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.jsonl");
    let lines = [
        r#"{"verifier": "math", "answer": "1000", "response": "so \\boxed{1,000}"}"#,
        "{\"verifier\": \"math\", \"answer\": \"\\\\frac14\", \"response\": \"#### 0.26\"}",
        r#"this is not json"#,
        r#"{"verifier": "countdown", "answer": {"target": 24, "numbers": [1, 2, 3, 4]}, "response": "<answer>(1 + 2 + 3) * 4</answer>"}"#,
        r#"{"verifier": "mathh", "answer": "1", "response": "1"}"#,
        r#"{"verifier": "choice", "answer": "C", "response": "The answer is (C)."}"#,
        r#"{"verifier": "exact", "answer": "Paris", "response": "\\boxed{paris}"}"#,
        r#"{"verifier": "math", "answer": "5"}"#,
        "",
        r#"{"verifier": "arithmetic", "answer": "936", "response": "7+9=16c1;4+8+1=13c1;3+5+1=9;=>936"}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = crate::run(&dir, &["verify", "--input", input.to_str().unwrap()]);
    assert!(output.status.success());
    let verdicts: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), lines.len());
    let correct: Vec<bool> = verdicts.iter().map(|v| v["correct"] == true).collect();
    assert_eq!(
        correct,
        [
            true, false, false, true, false, true, true, false, false, true
        ]
    );
    for (k, v) in verdicts.iter().enumerate() {
        for key in ["correct", "score", "extracted", "parsed", "reason"] {
            assert!(v.get(key).is_some(), "line {k}: `{key}` missing in {v}");
        }
    }
    for bad in [2, 4, 7, 8] {
        assert_eq!(
            verdicts[bad]["parsed"], false,
            "line {bad}: {}",
            verdicts[bad]
        );
    }
    assert!(
        verdicts[4]["reason"]
            .as_str()
            .unwrap()
            .contains("did you mean `math`")
    );
    assert_eq!(verdicts[0]["extracted"], "1,000");
    std::fs::remove_dir_all(&dir).unwrap();
}
