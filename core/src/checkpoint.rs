//! Checkpoints: safetensors weights plus JSON trainer state, written atomically.
//!
//! A checkpoint is a folder `step-NNNNNN/` holding `model.safetensors`,
//! `optimizer.safetensors` and `trainer_state.json`. It is written as `step-NNNNNN.tmp/` and
//! renamed into place, so a crash leaves either the old set of checkpoints or the new one,
//! never a half-written folder that looks complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;
use std::io::Write;

use safetensors::tensor::Dtype;

use crate::policy::{NamedTensor, NamedTensors};
use crate::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // The process id keeps two processes writing the same file (two runs of a comparison
    // storing the same base evaluation) off each other's temporary file.
    let tmp = path.with_extension(format!(
        "{}.{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let mut file = fs_err::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    drop(file);
    fs_err::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
}

/// The one header key under which zoo's metadata is stored, as a JSON object.
const METADATA_KEY: &str = "zoo";

/// Writes named f32 tensors as a safetensors file, atomically (temporary file, then rename),
/// one tensor at a time: no second copy of the whole model is held in memory.
///
/// The header carries `format: pt` (transformers refuses files without it) and zoo's
/// `metadata` under one key, and is written in sorted order, so the same tensors and metadata
/// give the same bytes.
pub fn save_safetensors(path: &Path, tensors: &NamedTensors, metadata: &Metadata) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), "pt".into());
    meta.insert(
        METADATA_KEY.into(),
        serde_json::to_string(metadata)
            .expect("a string map serializes")
            .into(),
    );
    header.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    for (name, t) in tensors {
        let bytes = t.shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_string(&header).expect("a JSON map serializes");
    // Tensor data starts 8-byte aligned, as the safetensors writer does.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let file = fs_err::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let mut out = std::io::BufWriter::new(file);
    let io = |e| Error::io("write", &tmp, e);
    out.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(text.as_bytes()).map_err(io)?;
    for t in tensors.values() {
        let values = t
            .value
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a float tensor converts to f32");
        if values.len() != t.shape.iter().product::<usize>() {
            return Err(Error::Shape {
                what: "checkpoint tensor",
                expected: format!(
                    "{} values for shape {:?}",
                    t.shape.iter().product::<usize>(),
                    t.shape
                ),
                got: format!("{}", values.len()),
            });
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_all(&bytes).map_err(io)?;
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs_err::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
}

/// Reads an f32 safetensors file onto `device`.
pub fn load_safetensors(path: &Path, device: &Device) -> Result<NamedTensors> {
    let bytes = fs_err::read(path).map_err(|e| Error::io("read", path, e))?;
    let bad = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        reason,
        hint: "the file is damaged or not a zoo checkpoint; delete it and re-create it".into(),
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = NamedTensors::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let numel = values.len();
        out.insert(
            name,
            NamedTensor {
                shape: view.shape().to_vec(),
                value: Tensor::from_data(TensorData::new(values, [numel]), device),
            },
        );
    }
    Ok(out)
}

/// Metadata stored with a checkpoint, e.g. the architecture.
pub type Metadata = BTreeMap<String, String>;

/// The zoo metadata stored in a safetensors file's header (empty for foreign files).
pub fn read_metadata(path: &Path) -> Result<Metadata> {
    let bytes = fs_err::read(path).map_err(|e| Error::io("read", path, e))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
            hint: "the file is damaged or not a safetensors file".into(),
        })?;
    let header = meta.metadata().clone().unwrap_or_default();
    Ok(header
        .get(METADATA_KEY)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default())
}

/// The folder of the checkpoint after `step` under `dir`.
pub fn step_dir(dir: &Path, step: usize) -> PathBuf {
    dir.join(format!("step-{step:06}"))
}

/// The complete checkpoints under `dir`, `(step, folder)`, oldest first.
fn step_dirs(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut steps = Vec::new();
    if !dir.exists() {
        return Ok(steps);
    }
    for entry in fs_err::read_dir(dir).map_err(|e| Error::io("read", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read", dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        // `step-000010.tmp` (being written) and `.old` (being replaced) do not parse.
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            steps.push((step, entry.path()));
        }
    }
    steps.sort();
    Ok(steps)
}

/// The newest complete checkpoint under `dir`: `(step, folder)`.
pub fn latest(dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    Ok(step_dirs(dir)?.pop())
}

/// Removes every complete checkpoint under `dir` but the newest `keep` (0: keeps them all);
/// returns the folders removed. The newest is written before older ones go, so a crash never
/// leaves fewer than `keep`.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let steps = step_dirs(dir)?;
    let old = steps.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, folder) in steps.into_iter().take(old) {
        fs_err::remove_dir_all(&folder).map_err(|e| Error::io("remove", &folder, e))?;
        removed.push(folder);
    }
    Ok(removed)
}

/// Writes the folder `final_dir` atomically: `fill` writes into a temporary sibling that is
/// then renamed into place (replacing an older folder of the same name).
pub fn write_dir_atomic(final_dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = final_dir.with_extension("tmp");
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
    }
    fs_err::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    fill(&tmp)?;
    // An older folder of the same name is moved aside, not deleted, until the new one is in
    // place: a crash in between leaves one of the two complete.
    let old = final_dir.with_extension("old");
    if final_dir.exists() {
        if old.exists() {
            fs_err::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
        }
        fs_err::rename(final_dir, &old).map_err(|e| Error::io("rename", final_dir, e))?;
    }
    fs_err::rename(&tmp, final_dir).map_err(|e| Error::io("rename into", final_dir, e))?;
    if old.exists() {
        fs_err::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_checkpoints_only() {
        let dir = std::env::temp_dir().join(format!("zoo-prune-{}", std::process::id()));
        for step in [2, 10, 4, 8] {
            fs_err::create_dir_all(step_dir(&dir, step)).unwrap();
        }
        // A temporary folder of a checkpoint being written is not a checkpoint.
        fs_err::create_dir_all(step_dir(&dir, 12).with_extension("tmp")).unwrap();
        assert!(prune(&dir, 0).unwrap().is_empty());
        let removed = prune(&dir, 2).unwrap();
        assert_eq!(removed, vec![step_dir(&dir, 2), step_dir(&dir, 4)]);
        assert!(step_dir(&dir, 8).exists() && step_dir(&dir, 10).exists());
        assert!(step_dir(&dir, 12).with_extension("tmp").exists());
        assert_eq!(latest(&dir).unwrap().unwrap().0, 10);
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn safetensors_round_trip_is_exact() {
        let device = Device::flex();
        let mut t = NamedTensors::new();
        let values = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.25e-7, 7.0, 8.0];
        t.insert(
            "a.weight".into(),
            NamedTensor {
                shape: vec![2, 3],
                value: Tensor::from_data(TensorData::new(values.clone(), [6]), &device),
            },
        );
        let dir = std::env::temp_dir().join(format!("zoo-ckpt-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        let meta = Metadata::from([("k".to_string(), "v".to_string()), ("a".into(), "b".into())]);
        save_safetensors(&path, &t, &meta).unwrap();
        let first = fs_err::read(&path).unwrap();
        save_safetensors(&path, &t, &meta).unwrap();
        assert_eq!(
            first,
            fs_err::read(&path).unwrap(),
            "same content, same bytes"
        );
        let back = load_safetensors(&path, &device).unwrap();
        assert_eq!(back["a.weight"].shape, vec![2, 3]);
        let got = back["a.weight"]
            .value
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(got, values);
        assert_eq!(read_metadata(&path).unwrap()["k"], "v");
        let bytes = fs_err::read(&path).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            header.metadata().as_ref().unwrap()["format"],
            "pt",
            "transformers reads the file"
        );
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tensor_whose_shape_disagrees_with_its_values_is_refused() {
        let device = Device::flex();
        let mut t = NamedTensors::new();
        t.insert(
            "w".into(),
            NamedTensor {
                shape: vec![2, 2],
                value: Tensor::from_data(TensorData::new(vec![1.0f32; 3], [3]), &device),
            },
        );
        let dir = std::env::temp_dir().join(format!("zoo-ckpt-shape-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        let err = save_safetensors(&path, &t, &Metadata::new()).unwrap_err();
        assert!(err.to_string().contains("shape mismatch"), "{err}");
        assert!(!path.exists(), "nothing half-written under the final name");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rewriting_a_checkpoint_folder_replaces_it_whole() {
        let dir = std::env::temp_dir().join(format!("zoo-ckpt-dir-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        let target = dir.join("step-000001");
        for content in ["first", "second"] {
            write_dir_atomic(&target, |tmp| {
                write_atomic(&tmp.join("f.txt"), content.as_bytes())
            })
            .unwrap();
        }
        assert_eq!(
            fs_err::read_to_string(target.join("f.txt")).unwrap(),
            "second"
        );
        let names: Vec<String> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["step-000001"],
            "no temporary or old folder left"
        );
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("zoo-ckpt-bad-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.safetensors");
        fs_err::write(&path, b"\x10\x00\x00").unwrap();
        let err = load_safetensors(&path, &Device::flex())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad file") && err.contains("hint:"), "{err}");
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
