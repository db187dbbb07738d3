//! Metrics: one JSON object per step in `metrics.jsonl`, with the field's names.
//!
//! Standard keys (verl/TRL conventions; `docs/metrics.md` is the reference): `reward/mean`,
//! `reward/std`, `response_length/mean`, `actor/loss`, `actor/pg_loss`, `actor/pg_clipfrac`,
//! `actor/ppo_kl`, `actor/entropy`, `actor/grad_norm`, `actor/lr`, `perf/throughput`,
//! `timing/rollout`, `timing/update`, `eval/pass@1`. Objectives add `<algo>/<name>`.
//!
//! The same metrics go, as TensorBoard scalars by step, to an event file beside
//! `metrics.jsonl` (see [`crate::tensorboard`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::tensorboard::{self, EventWriter};
use crate::{Error, Result};

/// One step's metrics by key.
pub type Metrics = BTreeMap<String, f64>;

/// Appends one JSON line per step to a file, and the same metrics to a TensorBoard event file in
/// the same folder.
pub struct MetricsWriter {
    path: PathBuf,
    file: fs_err::File,
    events: EventWriter,
}

impl MetricsWriter {
    /// Opens `path` for appending, first dropping the lines of steps after `keep_through`
    /// (a resumed run rewrites the steps it repeats), and starts a new TensorBoard event file in
    /// its folder. A resumed run (`keep_through > 0`) marks its restart in that file so that
    /// TensorBoard too drops the older files' points after `keep_through`.
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
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut events = EventWriter::create(dir)?;
        if keep_through > 0 {
            events.write_session_start(keep_through as u64 + 1, tensorboard::unix_seconds_now())?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            events,
        })
    }

    /// Writes `{"step": step, ...metrics}` as one line and flushes it, then the same metrics as
    /// one TensorBoard event. A non-finite value is `null` in the JSON line and kept as is
    /// (NaN, ±inf) in the event file.
    pub fn write(&mut self, step: usize, metrics: &Metrics) -> Result<()> {
        let mut object = serde_json::Map::new();
        object.insert("step".into(), step.into());
        for (k, v) in metrics {
            object.insert(k.clone(), serde_json::json!(v));
        }
        writeln!(self.file, "{}", serde_json::Value::Object(object))
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io("write", &self.path, e))?;
        let scalars: Vec<(String, f64)> = metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.events
            .write_scalars(step as u64, tensorboard::unix_seconds_now(), &scalars)
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
