//! The GGUF header: metadata values, tensor infos, and the validating parser over the file's
//! bytes (every length and extent checked against the file's size before any allocation).

use std::collections::BTreeMap;

use super::quants::{ggml_type, ggml_type_name};

/// One metadata value, as GGUF types it (value types 0..=12).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `UINT8` (0).
    U8(u8),
    /// `INT8` (1).
    I8(i8),
    /// `UINT16` (2).
    U16(u16),
    /// `INT16` (3).
    I16(i16),
    /// `UINT32` (4).
    U32(u32),
    /// `INT32` (5).
    I32(i32),
    /// `FLOAT32` (6).
    F32(f32),
    /// `BOOL` (7).
    Bool(bool),
    /// `STRING` (8): UTF-8.
    String(String),
    /// `ARRAY` (9): elements of one type (arrays of arrays allowed).
    Array(Vec<MetaValue>),
    /// `UINT64` (10).
    U64(u64),
    /// `INT64` (11).
    I64(i64),
    /// `FLOAT64` (12).
    F64(f64),
}

impl MetaValue {
    /// The GGUF name of the value's type (`UINT32`, `STRING`, `ARRAY`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "UINT8",
            MetaValue::I8(_) => "INT8",
            MetaValue::U16(_) => "UINT16",
            MetaValue::I16(_) => "INT16",
            MetaValue::U32(_) => "UINT32",
            MetaValue::I32(_) => "INT32",
            MetaValue::F32(_) => "FLOAT32",
            MetaValue::Bool(_) => "BOOL",
            MetaValue::String(_) => "STRING",
            MetaValue::Array(_) => "ARRAY",
            MetaValue::U64(_) => "UINT64",
            MetaValue::I64(_) => "INT64",
            MetaValue::F64(_) => "FLOAT64",
        }
    }

    /// An integer value of any width as `i64`; `None` for other types or a `UINT64` above
    /// `i64::MAX`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            MetaValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A non-negative integer value of any width as `u64`; `None` for other types and negatives.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U64(v) => Some(v),
            _ => self.as_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// A float or integer value as `f64`. `FLOAT32` values go through their shortest decimal form,
    /// so `1e-5f32` gives `1e-5`, not `9.999999747378752e-6`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(f32_to_f64_decimal(v)),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// A `BOOL` value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A `STRING` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An `ARRAY` value's elements.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// `x` as the `f64` of its shortest decimal representation.
fn f32_to_f64_decimal(x: f32) -> f64 {
    if x.is_finite() {
        x.to_string().parse().unwrap_or(x as f64)
    } else {
        x as f64
    }
}

/// GGML_MAX_DIMS.
const MAX_DIMS: usize = 4;
/// Deepest nesting of metadata arrays accepted (real files use 1).
const MAX_ARRAY_DEPTH: usize = 8;

/// One tensor of a GGUF file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The llama.cpp name (`blk.0.attn_q.weight`).
    pub name: String,
    /// The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`); `None` for tensors that
    /// are not model weights (`rope_freqs.weight`).
    pub hf_name: Option<String>,
    /// The ggml dimensions `ne`, fastest-varying first (the HF shape reversed).
    pub ggml_dims: Vec<u64>,
    /// The ggml type id (`0` F32, `1` F16, `8` Q8_0, ...).
    pub ggml_type: u32,
    /// Where the data starts in the file, in bytes.
    pub(super) start: usize,
    /// Bytes of data; `None` when the type is unknown to this reader.
    pub(super) len: Option<usize>,
}

impl TensorInfo {
    /// The ggml type's name (`Q4_1`), or `type N` when the id is unknown.
    pub fn type_name(&self) -> String {
        ggml_type_name(self.ggml_type)
    }

    /// The row-major (Hugging Face) shape: [`Self::ggml_dims`] reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.ggml_dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.ggml_dims.iter().map(|&d| d as usize).product()
    }
}

/// The header as parsed from the bytes, before names are mapped.
pub(super) struct Header {
    pub(super) version: u32,
    pub(super) metadata: BTreeMap<String, MetaValue>,
    pub(super) tensors: Vec<TensorInfo>,
}

/// A header parse failure: what is wrong, and whether it is a truncation (which gets its own hint).
pub(super) struct ParseError {
    pub(super) reason: String,
    pub(super) truncated: bool,
}

impl ParseError {
    fn bad(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
            truncated: false,
        }
    }
}

type Parse<T> = std::result::Result<T, ParseError>;

/// A reading position in the file.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes; `what` names them for the truncation message.
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Parse<&'a [u8]> {
        if n > self.remaining() {
            return Err(ParseError {
                reason: format!(
                    "the file ends inside {}: {n} bytes needed at byte {}, the file has {} bytes",
                    what(),
                    self.pos,
                    self.buf.len()
                ),
                truncated: true,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Parse<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Parse<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Parse<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length (`u64`) that must fit in what is left of the file, at `min_item` bytes per item.
    fn len(&mut self, min_item: usize, what: &dyn Fn() -> String) -> Parse<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_item))
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(ParseError {
                reason: format!(
                    "{} has length {n}, more than the {} bytes left in the file",
                    what(),
                    self.remaining()
                ),
                truncated: true,
            });
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Parse<String> {
        let n = self.len(1, what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ParseError::bad(format!("{} is not valid UTF-8", what())))
    }

    /// A metadata value of GGUF value type `ty`; `depth` counts enclosing arrays.
    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Parse<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            8 => MetaValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(ParseError::bad(format!(
                        "{} nests arrays more than {MAX_ARRAY_DEPTH} deep",
                        what()
                    )));
                }
                let elem = self.u32(what)?;
                let min_item = value_min_size(elem).ok_or_else(|| {
                    ParseError::bad(format!("{} has unknown element type {elem}", what()))
                })?;
                let n = self.len(min_item, what)?;
                let mut items = Vec::with_capacity(n);
                for i in 0..n {
                    items.push(self.value(elem, depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            _ => {
                return Err(ParseError::bad(format!(
                    "{} has unknown value type {ty} (GGUF defines 0..=12)",
                    what()
                )));
            }
        })
    }
}

/// The fewest bytes a value of GGUF value type `ty` takes; `None` for unknown types.
fn value_min_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// Parses and validates the header of the GGUF file `buf`: every length and every tensor's
/// extent is checked against `buf.len()`.
pub(super) fn parse_header(buf: &[u8]) -> Parse<Header> {
    let mut c = Cursor { buf, pos: 0 };
    let magic = c.take(4, &|| "the magic number".into())?;
    if magic != b"GGUF" {
        return Err(ParseError::bad(format!(
            "not a GGUF file: it starts with {:?}, not \"GGUF\"",
            String::from_utf8_lossy(magic)
        )));
    }
    let version = c.u32(&|| "the version".into())?;
    if version != 2 && version != 3 {
        let swapped = version.swap_bytes();
        return Err(ParseError::bad(if swapped == 2 || swapped == 3 {
            format!("big-endian GGUF (version {swapped}); zoo reads little-endian files")
        } else {
            format!("GGUF version {version}; zoo reads versions 2 and 3")
        }));
    }
    let tensor_count = c.u64(&|| "the tensor count".into())?;
    let kv_count = c.u64(&|| "the metadata count".into())?;
    // A key-value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
    // 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let rest = c.remaining() as u64;
    if kv_count > rest / 13 || tensor_count > rest / 24 {
        return Err(ParseError {
            reason: format!(
                "the header claims {kv_count} metadata entries and {tensor_count} tensors, more than \
                 the {rest} bytes after it can hold"
            ),
            truncated: true,
        });
    }

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = c.string(&|| format!("the key of metadata entry {i}"))?;
        let ty = c.u32(&|| format!("the type of metadata `{key}`"))?;
        let value = c.value(ty, 0, &|| format!("metadata `{key}`"))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(ParseError::bad(format!(
                "metadata key `{key}` appears twice"
            )));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a as usize,
            _ => {
                return Err(ParseError::bad(format!(
                    "`general.alignment` is {v:?}; it must be a power of two"
                )));
            }
        },
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(tensor_count as usize);
    let mut offsets = Vec::with_capacity(tensor_count as usize);
    let mut seen = std::collections::HashSet::new();
    for i in 0..tensor_count {
        let name = c.string(&|| format!("the name of tensor {i}"))?;
        let what = |part: &str| format!("the {part} of tensor `{name}`");
        let n_dims = c.u32(&|| what("dimension count"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(ParseError::bad(format!(
                "tensor `{name}` has {n_dims} dimensions; ggml allows 1 to {MAX_DIMS}"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(c.u64(&|| what("dimensions"))?);
        }
        let ggml_type = c.u32(&|| what("type"))?;
        let offset = c.u64(&|| what("offset"))?;
        if !seen.insert(name.clone()) {
            return Err(ParseError::bad(format!("tensor `{name}` appears twice")));
        }
        let numel = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64 && usize::try_from(n).is_ok());
        if numel.is_none() {
            return Err(ParseError::bad(format!(
                "tensor `{name}` has dimensions {dims:?}, too many elements"
            )));
        }
        offsets.push(offset);
        tensors.push(TensorInfo {
            name,
            hf_name: None,
            ggml_dims: dims,
            ggml_type,
            start: 0,
            len: None,
        });
    }

    // The data section starts at the next multiple of the alignment.
    let data_start = c.pos.div_ceil(alignment) * alignment;
    for (t, offset) in tensors.iter_mut().zip(offsets) {
        if offset % alignment as u64 != 0 {
            return Err(ParseError::bad(format!(
                "tensor `{}` has offset {offset}, not a multiple of the alignment {alignment}",
                t.name
            )));
        }
        let start = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(data_start));
        let Some(start) = start else {
            return Err(past_the_end(t, u64::MAX, buf.len()));
        };
        t.start = start;
        let Some((type_name, block, block_bytes)) = ggml_type(t.ggml_type) else {
            continue; // unknown type: refused when read
        };
        let numel = t.numel();
        if t.ggml_dims[0] % block as u64 != 0 {
            return Err(ParseError::bad(format!(
                "tensor `{}` ({type_name}) has rows of {} elements, not a multiple of the block \
                 size {block}",
                t.name, t.ggml_dims[0]
            )));
        }
        let len = (numel / block).checked_mul(block_bytes);
        let end = len.and_then(|l| start.checked_add(l));
        match (len, end) {
            (Some(len), Some(end)) if end <= buf.len() => t.len = Some(len),
            _ => {
                let end = end.map_or(u64::MAX, |e| e as u64);
                return Err(past_the_end(t, end, buf.len()));
            }
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

fn past_the_end(t: &TensorInfo, end: u64, file_len: usize) -> ParseError {
    ParseError {
        reason: format!(
            "tensor `{}` ({}, ggml dims {:?}) ends at byte {end}, past the end of the file \
             ({file_len} bytes)",
            t.name,
            t.type_name(),
            t.ggml_dims
        ),
        truncated: true,
    }
}
