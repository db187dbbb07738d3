//! Splitting a mini-batch into micro-batches never changes the gradient (design principle 1).

use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::objective::BuildContext;
use zoo::zoo_core::trainer::mini_batch_gradient;
use zoo::zoo_core::{ObjectiveConfig, rng};
use zoo::zoo_models::{TinyDecoderConfig, TinyPolicy};
use zoo_grpo::{GrpoConfig, LossAgg};

#[test]
fn micro_batch_split_keeps_gradient() {
    let config = TinyDecoderConfig::small();
    let policy =
        TinyPolicy::new(&config, &mut rng::stream(11, 0, "init"), &Device::flex()).unwrap();
    let fixed = crate::FixedBatch::sample(&policy);
    let batch = fixed.update();
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
