//! Batch types: sampled rollouts with their group ids, and the padded host matrices that carry
//! per-token numbers (masks, log-probs, advantages) between the trainer and an objective.

use burn::prelude::*;
use burn::tensor::TensorData;

/// One sampled response to one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Index of the prompt in the step's problem list.
    pub problem: usize,
    /// Group id: all responses to the same prompt share it (verl's `uid`).
    pub group_id: usize,
    /// Response token ids, including the end-of-sequence token when the response finished.
    pub tokens: Vec<u32>,
    /// Log-prob of each sampled token under the behaviour policy, at the sampling temperature.
    pub behaviour_logprobs: Vec<f32>,
    /// Whether the response ended with end-of-sequence (false: truncated at the length cap).
    pub finished: bool,
}

/// The rollouts of one training step, in group order (group `g` is contiguous).
#[derive(Debug, Clone, Default)]
pub struct RolloutBatch {
    /// The tokenized prompts, one per problem.
    pub prompts: Vec<Vec<u32>>,
    /// The responses, `group_size` per prompt.
    pub rollouts: Vec<Rollout>,
}

impl RolloutBatch {
    /// The mask of response tokens: `[n, t]` with `t` the longest response.
    pub fn mask(&self) -> TokenMatrix {
        let cols = self
            .rollouts
            .iter()
            .map(|r| r.tokens.len())
            .max()
            .unwrap_or(0);
        let mut mask = TokenMatrix::zeros(self.rollouts.len(), cols);
        for (i, r) in self.rollouts.iter().enumerate() {
            for t in 0..r.tokens.len() {
                mask.set(i, t, 1.0);
            }
        }
        mask
    }

    /// The group id of each response.
    pub fn group_ids(&self) -> Vec<usize> {
        self.rollouts.iter().map(|r| r.group_id).collect()
    }
}

/// A dense row-major `[rows, cols]` matrix of f32 on the host: per-token numbers of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenMatrix {
    /// Number of rows (responses).
    pub rows: usize,
    /// Number of columns (token positions).
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub data: Vec<f32>,
}

impl TokenMatrix {
    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Rows of possibly different lengths, right-padded with zeros to `cols`.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a [f32]>, cols: usize) -> Self {
        let mut data = Vec::new();
        let mut n = 0;
        for row in rows {
            assert!(row.len() <= cols, "row longer than the matrix width");
            data.extend_from_slice(row);
            data.extend(std::iter::repeat_n(0.0, cols - row.len()));
            n += 1;
        }
        Self {
            rows: n,
            cols,
            data,
        }
    }

    /// One value per row spread over the row's masked positions: `out[i, t] = values[i] ·
    /// mask[i, t]` (a per-response advantage broadcast to its tokens).
    pub fn per_row(values: &[f32], mask: &TokenMatrix) -> Self {
        let mut out = Self::zeros(mask.rows, mask.cols);
        for (i, &v) in values.iter().enumerate() {
            for t in 0..mask.cols {
                out.set(i, t, v * mask.get(i, t));
            }
        }
        out
    }

    /// The value at `(row, col)`.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        self.data[row * self.cols + col]
    }

    /// Sets the value at `(row, col)`.
    pub fn set(&mut self, row: usize, col: usize, value: f32) {
        self.data[row * self.cols + col] = value;
    }

    /// One row as a slice.
    pub fn row(&self, row: usize) -> &[f32] {
        &self.data[row * self.cols..(row + 1) * self.cols]
    }

    /// The rows with the given indices, in that order.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for &r in rows {
            data.extend_from_slice(self.row(r));
        }
        Self {
            rows: rows.len(),
            cols: self.cols,
            data,
        }
    }

    /// Copies the matrix to a `[rows, cols]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.rows, self.cols]),
            device,
        )
    }

    /// Reads a `[rows, cols]` tensor back to the host.
    pub fn from_tensor(tensor: Tensor<2>) -> Self {
        let [rows, cols] = tensor.dims();
        let data = tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a float tensor converts to f32");
        Self { rows, cols, data }
    }
}

/// A host array of raw logits `[rows, cols, vocab]`, row-major: a teacher's distribution at
/// every response position.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitArray {
    /// Number of rows (responses).
    pub rows: usize,
    /// Number of positions.
    pub cols: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// `rows * cols * vocab` values.
    pub data: Vec<f32>,
}

impl LogitArray {
    /// Reads a `[rows, cols, vocab]` tensor back to the host.
    pub fn from_tensor(tensor: Tensor<3>) -> Self {
        let [rows, cols, vocab] = tensor.dims();
        let data = tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a float tensor converts to f32");
        Self {
            rows,
            cols,
            vocab,
            data,
        }
    }

    /// The rows with the given indices, each cut or zero-padded to `cols` positions.
    pub fn select_rows(&self, rows: &[usize], cols: usize) -> Self {
        let mut data = Vec::with_capacity(rows.len() * cols * self.vocab);
        let keep = cols.min(self.cols) * self.vocab;
        for &r in rows {
            let start = r * self.cols * self.vocab;
            data.extend_from_slice(&self.data[start..start + keep]);
            data.extend(std::iter::repeat_n(0.0, cols * self.vocab - keep));
        }
        Self {
            rows: rows.len(),
            cols,
            vocab: self.vocab,
            data,
        }
    }

    /// Copies the array to a `[rows, cols, vocab]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.rows, self.cols, self.vocab]),
            device,
        )
    }
}
