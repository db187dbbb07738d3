//! Splitting a mini-batch into micro-batches never changes the gradient (design principle 1).

use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::objective::BuildContext;
use zoo::zoo_core::policy::Tokenizer;
use zoo::zoo_core::trainer::{UpdateBatch, mini_batch_gradient};
use zoo::zoo_core::{ObjectiveConfig, Policy, SamplingConfig, TokenMatrix, rng};
use zoo::zoo_models::{CharTokenizer, TinyDecoderConfig, TinyPolicy};
use zoo_grpo::{GrpoConfig, LossAgg};

#[test]
fn micro_batch_split_keeps_gradient() {
    let config = TinyDecoderConfig::small();
    let policy =
        TinyPolicy::new(&config, &mut rng::stream(11, 0, "init"), &Device::flex()).unwrap();
    // Eight responses of unequal lengths to four prompts of unequal lengths.
    let prompts = ["1+2=", "345+6789=", "12+34=", "9+99="];
    let contexts: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(CharTokenizer.encode_prompt(p).unwrap(), 2))
        .collect();
    let samples = policy.sample(
        &contexts,
        &SamplingConfig {
            temperature: 1.0,
            max_new_tokens: 9,
        },
        &mut rng::stream(5, 0, "s"),
    );
    let responses: Vec<Vec<u32>> = samples.iter().map(|s| s.tokens.clone()).collect();
    let cols = responses.iter().map(Vec::len).max().unwrap();
    let mut mask = TokenMatrix::zeros(8, cols);
    let mut advantages = TokenMatrix::zeros(8, cols);
    for (i, r) in responses.iter().enumerate() {
        for t in 0..r.len() {
            mask.set(i, t, 1.0);
            advantages.set(i, t, if i % 3 == 0 { 1.3 } else { -0.7 });
        }
    }
    // A stale ℓ^old so that some ratios leave the clip range.
    let mut old =
        TokenMatrix::from_tensor(policy.token_logprobs(&contexts, &responses, 1.0, false));
    for (k, v) in old.data.iter_mut().enumerate() {
        *v += if k % 2 == 0 { 0.3 } else { -0.05 };
    }
    let batch = UpdateBatch {
        contexts: &contexts,
        responses: &responses,
        mask: &mask,
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &advantages,
        teacher_logits: None,
        rewards: &[0.0; 8],
        group_ids: &[0, 0, 1, 1, 2, 2, 3, 3],
    };
    let rows: Vec<usize> = (0..8).collect();
    for loss_agg in [
        LossAgg::TokenMean,
        LossAgg::SeqMeanTokenMean,
        LossAgg::SeqMeanTokenSum,
        LossAgg::Constant,
    ] {
        let objective = GrpoConfig {
            loss_agg,
            ..GrpoConfig::default()
        }
        .build(&BuildContext {
            max_new_tokens: 9,
            group_size: 2,
            steps: 1,
            evaluation: false,
        })
        .unwrap();
        let whole =
            mini_batch_gradient(&policy, objective.as_ref(), &batch, &rows, 8, 1.0).unwrap();
        for micro in [4, 2] {
            let split = mini_batch_gradient(&policy, objective.as_ref(), &batch, &rows, micro, 1.0)
                .unwrap();
            approx::assert_relative_eq!(whole.loss, split.loss, max_relative = 1e-5);
            for (name, g) in &whole.grads {
                let a = g.value.clone().into_data().try_to_vec::<f32>().unwrap();
                let b = split.grads[name]
                    .value
                    .clone()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(
                    scale > 0.0,
                    "{name} has a zero gradient: the test would prove nothing"
                );
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * scale,
                        "{loss_agg:?}, {micro} per micro-batch, {name}: {x} vs {y} (scale {scale})"
                    );
                }
            }
        }
    }
}
