//! Loss aggregation: how per-token loss terms become one scalar (`algorithms.md` §0.2).
//!
//! The trainer, not the objective, reduces. It turns the aggregation mode into a per-token
//! coefficient computed from counts over the *whole optimizer mini-batch*, then each
//! micro-batch contributes `Σ coef · loss`. The sum of the micro-batch losses is then exactly
//! the mini-batch formula, so splitting never changes the gradient (verl passes the global
//! token count for the same reason).

use serde::{Deserialize, Serialize};

use crate::batch::TokenMatrix;

/// How per-token loss terms are reduced over a mini-batch `B` of `N_B` non-empty responses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// `Σ m·loss / Σ m` (DAPO; verl's and TRL's default).
    TokenMean,
    /// `(1/N_B) Σ_i (Σ_t m·loss / L_i)` (the original GRPO).
    SeqMeanTokenMean,
    /// `(1/N_B) Σ_i Σ_t m·loss`.
    SeqMeanTokenSum,
    /// `Σ m·loss / C` with a constant `C` (Dr.GRPO as verl computes it, `C = L_max`).
    Constant(f32),
    /// `(1/N_B) Σ_i Σ_t m·loss / C`: each response's token sum, their mean, divided by a
    /// constant `C` (verl's `seq-mean-token-sum-norm`, `C` the response length cap).
    SeqMeanTokenSumNorm(f32),
    /// `Σ m·loss / (n·C)` over the mini-batch's `n` rows, empty ones included (Dr.GRPO as TRL
    /// computes it: batch size × `max_completion_length`).
    ConstantPerSequence(f32),
    /// Two token sets, each a token-mean of its own over the mini-batch:
    /// `Σ_{t∉S} m·loss / Σ_{t∉S} m + w·Σ_{t∈S} m·loss / Σ_{t∈S} m`, with `S` the tokens the
    /// credit stage selects ([`crate::Credit::selected`]); an empty set adds 0 (RLCSD's
    /// two-path loss, `w` = `η`).
    SplitTokenMean {
        /// `w`, the weight of the selected tokens' mean.
        selected_weight: f32,
    },
}

impl Aggregation {
    /// The per-token coefficients `[n, t]` for a mini-batch with `mask` (`[n, t]`, 0/1) and,
    /// for [`Aggregation::SplitTokenMean`], the selected tokens `selected` (`[n, t]`, 0/1; `None`:
    /// none): `loss = Σ coef ⊙ per_token_loss`. Padded positions get exactly 0.
    pub fn token_coefficients(
        &self,
        mask: &TokenMatrix,
        selected: Option<&TokenMatrix>,
    ) -> TokenMatrix {
        if let Aggregation::SplitTokenMean { selected_weight } = *self {
            return split_coefficients(mask, selected, selected_weight);
        }
        let lengths: Vec<f32> = (0..mask.rows)
            .map(|i| mask.row(i).iter().sum::<f32>())
            .collect();
        let total_tokens: f32 = lengths.iter().sum();
        let nonempty = lengths.iter().filter(|&&l| l > 0.0).count() as f32;
        let mut coef = TokenMatrix::zeros(mask.rows, mask.cols);
        for (i, &len) in lengths.iter().enumerate() {
            if len == 0.0 {
                continue;
            }
            let per_token = match *self {
                Aggregation::TokenMean => 1.0 / total_tokens,
                Aggregation::SeqMeanTokenMean => 1.0 / (nonempty * len),
                Aggregation::SeqMeanTokenSum => 1.0 / nonempty,
                Aggregation::Constant(c) => 1.0 / c,
                Aggregation::SeqMeanTokenSumNorm(c) => 1.0 / (nonempty * c),
                Aggregation::ConstantPerSequence(c) => 1.0 / (mask.rows as f32 * c),
                Aggregation::SplitTokenMean { .. } => unreachable!("handled above"),
            };
            for t in 0..mask.cols {
                let m = mask.get(i, t);
                if m != 0.0 {
                    coef.set(i, t, m * per_token);
                }
            }
        }
        coef
    }

    /// Applies the mode to a host loss matrix: the reference formula of §0.2, for tests and
    /// `objective eval`.
    pub fn reduce(
        &self,
        loss: &TokenMatrix,
        mask: &TokenMatrix,
        selected: Option<&TokenMatrix>,
    ) -> f64 {
        let coef = self.token_coefficients(mask, selected);
        coef.data
            .iter()
            .zip(&loss.data)
            .map(|(&c, &l)| c as f64 * l as f64)
            .sum()
    }
}

/// [`Aggregation::SplitTokenMean`]'s coefficients: `1/N_rest` on the unselected tokens of
/// `mask`, `w/N_S` on the selected ones.
fn split_coefficients(mask: &TokenMatrix, selected: Option<&TokenMatrix>, w: f32) -> TokenMatrix {
    let chosen = |k: usize| selected.is_some_and(|s| s.data[k] != 0.0);
    let (mut rest, mut picked) = (0f32, 0f32);
    for (k, &m) in mask.data.iter().enumerate() {
        if m != 0.0 {
            if chosen(k) {
                picked += m;
            } else {
                rest += m;
            }
        }
    }
    let mut coef = TokenMatrix::zeros(mask.rows, mask.cols);
    for (k, &m) in mask.data.iter().enumerate() {
        if m != 0.0 {
            coef.data[k] = if chosen(k) { m * w / picked } else { m / rest };
        }
    }
    coef
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// Two responses of lengths 1 and `l` padded to `l` (spec property G-5).
    fn lengths_one_and(l: usize) -> TokenMatrix {
        let mut mask = TokenMatrix::zeros(2, l);
        mask.set(0, 0, 1.0);
        for t in 0..l {
            mask.set(1, t, 1.0);
        }
        mask
    }

    #[test]
    fn token_mean_weights_every_token_equally() {
        let l = 7;
        let coef = Aggregation::TokenMean.token_coefficients(&lengths_one_and(l), None);
        assert_relative_eq!(coef.get(0, 0), 1.0 / (l as f32 + 1.0));
        for t in 0..l {
            assert_relative_eq!(coef.get(1, t), 1.0 / (l as f32 + 1.0));
        }
    }

    #[test]
    fn seq_mean_token_mean_gives_each_sequence_half() {
        let l = 7;
        let coef = Aggregation::SeqMeanTokenMean.token_coefficients(&lengths_one_and(l), None);
        assert_relative_eq!(coef.get(0, 0), 0.5);
        for t in 0..l {
            assert_relative_eq!(coef.get(1, t), 1.0 / (2.0 * l as f32));
        }
    }

    #[test]
    fn seq_mean_token_sum_weights_tokens_by_sequence_count() {
        let l = 7;
        let coef = Aggregation::SeqMeanTokenSum.token_coefficients(&lengths_one_and(l), None);
        assert_relative_eq!(coef.get(0, 0), 0.5);
        for t in 0..l {
            assert_relative_eq!(coef.get(1, t), 0.5);
        }
    }

    #[test]
    fn constant_normalizer_ignores_lengths() {
        let l = 7;
        let l_max = 20.0;
        let coef = Aggregation::Constant(2.0 * l_max).token_coefficients(&lengths_one_and(l), None);
        assert_relative_eq!(coef.get(0, 0), 1.0 / (2.0 * l_max));
        assert_relative_eq!(coef.get(1, 3), 1.0 / (2.0 * l_max));
    }

    #[test]
    fn padded_positions_get_zero_coefficient() {
        let mask = lengths_one_and(5);
        for mode in [
            Aggregation::TokenMean,
            Aggregation::SeqMeanTokenMean,
            Aggregation::SeqMeanTokenSum,
            Aggregation::Constant(3.0),
        ] {
            let coef = mode.token_coefficients(&mask, None);
            for t in 1..5 {
                assert_eq!(coef.get(0, t), 0.0, "{mode:?}");
            }
        }
    }

    #[test]
    fn empty_responses_do_not_count_as_sequences() {
        let mut mask = TokenMatrix::zeros(3, 2);
        mask.set(0, 0, 1.0);
        mask.set(0, 1, 1.0);
        // rows 1 and 2: row 1 has one token, row 2 is empty.
        mask.set(1, 0, 1.0);
        let coef = Aggregation::SeqMeanTokenSum.token_coefficients(&mask, None);
        assert_relative_eq!(coef.get(1, 0), 0.5);
    }

    #[test]
    fn split_token_mean_normalizes_each_set_by_its_own_count() {
        // Lengths 1 and 7; tokens (1, 0) and (1, 1) selected: 2 selected, 6 others.
        let mask = lengths_one_and(7);
        let mut selected = TokenMatrix::zeros(2, 7);
        selected.set(1, 0, 1.0);
        selected.set(1, 1, 1.0);
        selected.set(0, 5, 1.0); // a padded position: no token, no count
        let mode = Aggregation::SplitTokenMean {
            selected_weight: 3.0,
        };
        let coef = mode.token_coefficients(&mask, Some(&selected));
        assert_relative_eq!(coef.get(0, 0), 1.0 / 6.0);
        assert_relative_eq!(coef.get(1, 0), 3.0 / 2.0);
        assert_relative_eq!(coef.get(1, 1), 3.0 / 2.0);
        assert_relative_eq!(coef.get(1, 6), 1.0 / 6.0);
        assert_eq!(coef.get(0, 5), 0.0);
        // Nothing selected: a plain token-mean.
        let plain = mode.token_coefficients(&mask, None);
        assert_eq!(
            plain,
            Aggregation::TokenMean.token_coefficients(&mask, None)
        );
    }
}
