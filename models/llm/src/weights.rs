//! Reading weights by Hugging Face name: safetensors folders (single file or sharded, memory
//! mapped) and (through [`crate::gguf`]) GGUF files, both behind [`WeightSource`]; and writing a
//! Hugging Face `model.safetensors`, one tensor at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};
use zoo_core::{Error, Result};

/// Where weights come from: names in Hugging Face convention
/// (`model.layers.0.self_attn.q_proj.weight`), shapes in HF layout (`[out, in]` for linear
/// weights), values converted to f32 one tensor at a time.
pub trait WeightSource {
    /// Every tensor the source holds: its HF name and shape.
    fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)>;
    /// The values of tensor `name`, row-major, as f32.
    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>>;
}

fn bad(path: &Path, reason: String, hint: &str) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        reason,
        hint: hint.to_string(),
    }
}

/// One memory-mapped safetensors file with its header checked.
struct Shard {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = fs_err::File::open(path).map_err(|e| Error::io("read", path, e))?;
        // SAFETY: the file is opened read-only; zoo never writes a file it is reading, and a
        // concurrent writer would be replacing it by rename (a new inode), not in place.
        let map =
            unsafe { memmap2::Mmap::map(file.file()) }.map_err(|e| Error::io("map", path, e))?;
        SafeTensors::deserialize(&map).map_err(|e| {
            bad(
                path,
                format!("not a readable safetensors file ({e})"),
                "the file is truncated or damaged: download it again",
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
        })
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.map).expect("checked when opened")
    }
}

/// The weights of a Hugging Face folder: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`.
pub struct SafetensorsDir {
    shards: Vec<Shard>,
    /// Tensor name → (shard index, shape).
    index: BTreeMap<String, (usize, Vec<usize>)>,
}

impl SafetensorsDir {
    /// Opens the weights of `dir`, checking every file's header.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index_path.exists() {
            let text = fs_err::read_to_string(&index_path)
                .map_err(|e| Error::io("read", &index_path, e))?;
            let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                bad(
                    &index_path,
                    format!("not JSON ({e})"),
                    "download the file again",
                )
            })?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| {
                    bad(
                        &index_path,
                        "no `weight_map` object".into(),
                        "download the file again",
                    )
                })?;
            let mut files: Vec<PathBuf> = Vec::new();
            for file in map.values() {
                let name = file.as_str().ok_or_else(|| {
                    bad(
                        &index_path,
                        format!("`weight_map` value {file} is not a file name"),
                        "download the file again",
                    )
                })?;
                let path = dir.join(name);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
            for path in &files {
                if !path.exists() {
                    return Err(bad(
                        &index_path,
                        format!(
                            "it names the shard `{}`, which is not in the folder",
                            path.display()
                        ),
                        "download every shard the index lists into the same folder",
                    ));
                }
            }
            files
        } else if single.exists() {
            vec![single]
        } else {
            return Err(bad(
                dir,
                "no weights: neither `model.safetensors` nor `model.safetensors.index.json`".into(),
                "pass a Hugging Face model folder with safetensors weights, or a `.gguf` file",
            ));
        };
        Self::from_files(&files)
    }

    /// Opens one safetensors file (e.g. PEFT's `adapter_model.safetensors`).
    pub fn open_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(bad(
                path,
                "no such file".into(),
                "pass the folder PEFT's `save_pretrained` wrote",
            ));
        }
        Self::from_files(&[path.to_path_buf()])
    }

    fn from_files(files: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::new();
        let mut index = BTreeMap::new();
        for (i, path) in files.iter().enumerate() {
            let shard = Shard::open(path)?;
            for (name, view) in shard.tensors().tensors() {
                match view.dtype() {
                    Dtype::F32 | Dtype::F16 | Dtype::BF16 => {}
                    other => {
                        return Err(bad(
                            path,
                            format!("tensor `{name}` is {other:?}; zoo reads F32, F16 and BF16"),
                            "convert the checkpoint to bf16 or f32 (quantized safetensors are not supported)",
                        ));
                    }
                }
                index.insert(name, (i, view.shape().to_vec()));
            }
            shards.push(shard);
        }
        Ok(Self { shards, index })
    }
}

impl WeightSource for SafetensorsDir {
    fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.index
            .iter()
            .map(|(name, (_, shape))| (name.clone(), shape.clone()))
            .collect()
    }

    fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (shard, _) = self
            .index
            .get(name)
            .ok_or_else(|| Error::Config(format!("no tensor `{name}`")))?;
        let shard = &self.shards[*shard];
        let tensors = shard.tensors();
        let view = tensors
            .tensor(name)
            .map_err(|e| bad(&shard.path, e.to_string(), "download the file again"))?;
        Ok(to_f32(view.dtype(), view.data()))
    }
}

/// Little-endian `bytes` of `dtype` (F32, F16 or BF16) as f32.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => unreachable!("dtype {other:?} is refused when the file is opened"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_core::burn::prelude::*;
    use zoo_core::burn::tensor::TensorData;
    use zoo_core::policy::{NamedTensor, NamedTensors};

    /// Writes `tensors` (name, shape, values) with zoo's checkpoint writer.
    fn write(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
        let device = Device::flex();
        let named: NamedTensors = tensors
            .iter()
            .map(|(n, shape, v)| {
                let value = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device);
                (
                    n.to_string(),
                    NamedTensor {
                        shape: shape.clone(),
                        value,
                    },
                )
            })
            .collect();
        zoo_core::checkpoint::save_safetensors(path, &named, &Default::default()).unwrap();
    }

    fn tmpdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("zoo-llm-weights-{name}-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn checkpoint_files_read_back_exactly() {
        let dir = tmpdir("rt");
        let b = vec![0.5, 1.5, -0.0, 7.0, 1e-8, 2.0];
        write(
            &dir.join("model.safetensors"),
            &[
                ("b.weight", vec![2, 3], b.clone()),
                ("a.bias", vec![3], vec![1.0, -2.5, 3.0]),
            ],
        );
        let source = SafetensorsDir::open(&dir).unwrap();
        assert_eq!(source.tensor_f32("b.weight").unwrap(), b);
        assert_eq!(source.tensor_shapes()[0], ("a.bias".to_string(), vec![3]));
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sharded_weights_are_read_through_their_index() {
        let dir = tmpdir("shards");
        write(
            &dir.join("model-00001-of-00002.safetensors"),
            &[("a.weight", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])],
        );
        write(
            &dir.join("model-00002-of-00002.safetensors"),
            &[("b.bias", vec![3], vec![-1.0, 0.5, 9.0])],
        );
        fs_err::write(
            dir.join("model.safetensors.index.json"),
            r#"{"metadata": {"total_size": 28}, "weight_map": {
                "a.weight": "model-00001-of-00002.safetensors",
                "b.bias": "model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let source = SafetensorsDir::open(&dir).unwrap();
        assert_eq!(
            source.tensor_shapes(),
            vec![
                ("a.weight".to_string(), vec![2, 2]),
                ("b.bias".to_string(), vec![3])
            ]
        );
        assert_eq!(source.tensor_f32("b.bias").unwrap(), vec![-1.0, 0.5, 9.0]);
        assert_eq!(
            source.tensor_f32("a.weight").unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn half_precision_converts_exactly() {
        let values = [1.0f32, -2.0, 0.333_251_95];
        let bf: Vec<u8> = values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let f: Vec<u8> = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::BF16, &bf)[..2], [1.0, -2.0]);
        assert_eq!(to_f32(Dtype::F16, &f), vec![1.0, -2.0, 0.333_251_95]);
    }

    #[test]
    fn a_folder_without_weights_or_with_a_missing_shard_or_truncated_file_is_refused() {
        let dir = tmpdir("bad");
        let err = SafetensorsDir::open(&dir).err().unwrap().to_string();
        assert!(err.contains("no weights") && err.contains("hint:"), "{err}");
        fs_err::write(
            dir.join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let err = SafetensorsDir::open(&dir).err().unwrap().to_string();
        assert!(err.contains("model-00001-of-00002.safetensors"), "{err}");
        fs_err::remove_file(dir.join("model.safetensors.index.json")).unwrap();
        let path = dir.join("model.safetensors");
        write(&path, &[("a", vec![4], vec![1.0; 4])]);
        let bytes = fs_err::read(&path).unwrap();
        fs_err::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = SafetensorsDir::open(&dir).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
