//! Fuzzes every answer checker of zoo-judge: any bytes, split into a gold and a response at
//! the first NUL, must give a well-formed judgement without panicking.
//!
//! cargo +nightly fuzz run judge -- -max_total_time=600

#![no_main]

use libfuzzer_sys::fuzz_target;
use zoo_judge::{Judgement, MathJudge, choice, countdown};

fn well_formed(j: &Judgement) {
    assert!(j.score == 0.0 || j.score == 1.0);
    assert_eq!(j.correct, j.score == 1.0);
    assert!(!j.correct || j.parsed);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (gold, response) = text.split_once('\0').unwrap_or(("42", &text));
    well_formed(&MathJudge::default().check(gold, response));
    well_formed(&countdown::check_json(gold, response));
    well_formed(&choice::exact(gold, response));
    well_formed(&choice::choice(gold, response));
});
