//! Metrics: one JSON object per step in `metrics.jsonl`, with the field's names.
//!
//! Standard keys (verl/TRL conventions; `docs/metrics.md` is the reference): `reward/mean`,
//! `reward/std`, `response_length/mean`, `actor/loss`, `actor/pg_loss`, `actor/pg_clipfrac`,
//! `actor/ppo_kl`, `actor/entropy`, `actor/grad_norm`, `actor/lr`, `perf/throughput`,
//! `timing/rollout`, `timing/update`, `eval/pass@1`. Objectives add `<algo>/<name>`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One step's metrics by key.
pub type Metrics = BTreeMap<String, f64>;

/// Appends one JSON line per step to a file.
pub struct MetricsWriter {
    path: PathBuf,
    file: fs_err::File,
}

impl MetricsWriter {
    /// Opens `path` for appending, first dropping the lines of steps after `keep_through`
    /// (a resumed run rewrites the steps it repeats).
    pub fn open(path: &Path, keep_through: usize) -> Result<Self> {
        let kept: Vec<String> = if path.exists() {
            fs_err::read_to_string(path)
                .map_err(|e| Error::io("read", path, e))?
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| s as usize <= keep_through)
                })
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let mut file = fs_err::File::create(path).map_err(|e| Error::io("create", path, e))?;
        for line in kept {
            writeln!(file, "{line}").map_err(|e| Error::io("write", path, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes `{"step": step, ...metrics}` as one line and flushes it.
    pub fn write(&mut self, step: usize, metrics: &Metrics) -> Result<()> {
        let mut object = serde_json::Map::new();
        object.insert("step".into(), step.into());
        for (k, v) in metrics {
            object.insert(k.clone(), serde_json::json!(v));
        }
        writeln!(self.file, "{}", serde_json::Value::Object(object))
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

/// Mean and (population) standard deviation.
pub fn mean_std(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
