//! Configuration plumbing: defaults, a TOML file and `--set key=value` overrides merged into
//! one TOML table, then deserialized once into typed, validated configs.
//!
//! Every config struct denies unknown fields, so a misspelt key is an error that names it
//! rather than a silently ignored setting.

use crate::objective::ObjectiveConfig;
use crate::registry;
use crate::{Error, Result};

/// Merges `over` into `base`: tables merge key by key, anything else is replaced.
pub fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(base), toml::Value::Table(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Applies one `key.path=value` override to `table`. The value is read as TOML (`3`, `1e-4`,
/// `true`, `"text"`, `[1, 2]`); anything that is not valid TOML is taken as a string.
pub fn apply_set(table: &mut toml::Value, assignment: &str) -> Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(Error::Config(format!(
            "`--set {assignment}` has no `=`\nhint: write `--set key=value`, e.g. `--set optim.lr=1e-4`"
        )));
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(Error::Config(format!(
            "`--set {assignment}` has an empty key\nhint: write `--set section.key=value`"
        )));
    }
    let raw = raw.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    set_value(table, key, value);
    Ok(())
}

/// Sets the dotted `key` (e.g. `optim.lr`) of `table` to `value`, creating tables on the way.
pub fn set_value(table: &mut toml::Value, key: &str, value: toml::Value) {
    let mut over = value;
    for part in key.split('.').rev() {
        let mut table = toml::Table::new();
        table.insert(part.to_string(), over);
        over = toml::Value::Table(table);
    }
    merge(table, over);
}

/// The default configuration of algorithm `algo` as a TOML table (with its `algo` tag).
pub fn default_objective_table(algo: &str) -> Result<toml::Value> {
    let entry = registry::algorithm(algo)?;
    let config = (entry.default_config)();
    toml::Value::try_from(&config).map_err(|e| Error::Config(e.to_string()))
}

/// Deserializes an objective configuration from a TOML table that carries `algo`.
pub fn objective_from_table(table: toml::Value) -> Result<Box<dyn ObjectiveConfig>> {
    let algo = table
        .get("algo")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    registry::algorithm(&algo)?;
    table.try_into().map_err(|e: toml::de::Error| {
        Error::Config(format!(
            "objective `{algo}`: {}\nhint: `zoo train --algo {algo} --dry-run` prints every key with its default",
            e.message().trim()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_nested_keys_and_last_wins() {
        let mut t: toml::Value = toml::from_str("[optim]\nlr = 1.0\nbeta1 = 0.9").unwrap();
        apply_set(&mut t, "optim.lr=2e-4").unwrap();
        apply_set(&mut t, "optim.lr=3e-4").unwrap();
        apply_set(&mut t, "task=mod10").unwrap();
        assert_eq!(t["optim"]["lr"].as_float(), Some(3e-4));
        assert_eq!(t["optim"]["beta1"].as_float(), Some(0.9));
        assert_eq!(t["task"].as_str(), Some("mod10"));
    }

    #[test]
    fn set_without_equals_is_a_clear_error() {
        let mut t = toml::Value::Table(Default::default());
        let err = apply_set(&mut t, "optim.lr").unwrap_err().to_string();
        assert!(err.contains("hint"), "{err}");
    }
}
