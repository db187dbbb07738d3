//! Seeds make CPU runs reproducible: the warm start regenerates its checkpoint bit for bit.

use crate::run;

#[test]
fn warm_start_is_bitwise_reproducible() {
    let base = std::env::temp_dir().join(format!("zoo-it-repro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut files = Vec::new();
    for name in ["a", "b"] {
        let cache = base.join(name);
        let args = [
            "sft",
            "--quiet",
            "--task",
            "mod10",
            "--steps",
            "4",
            "--seed",
            "9",
            "--set",
            "warm_start.sft.batch_size=16",
            "--set",
            "eval.problems=10",
        ];
        let output = run(&cache, &args);
        assert!(output.status.success());
        let dir = cache.join("base");
        let entry = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
        files.push((entry.file_name(), std::fs::read(entry.path()).unwrap()));
    }
    assert_eq!(files[0].0, files[1].0, "same settings, same cache key");
    assert!(files[0].1 == files[1].1, "the two checkpoints differ");
    std::fs::remove_dir_all(&base).unwrap();
}
