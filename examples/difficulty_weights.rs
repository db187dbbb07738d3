//! GRPO, Dr.GRPO-style GRPO (no std) and DisCO-b on the difficulty spectrum: the exact
//! per-question weight (the expected ascent gradient on a two-arm question's logit at success
//! probability p, group size 8), computed by enumerating every group outcome through the
//! registered objectives, next to the closed forms of `algorithms.md` §9 (G-4, C-1).
//!
//! cargo run --example difficulty_weights

fn main() -> anyhow::Result<()> {
    zoo::link_all();
    let g = 8u32;
    let gf = g as f64;
    let binomial = |k: u32| (1..=k).fold(1.0, |acc, i| acc * (g - k + i) as f64 / i as f64);
    let objectives = [
        ("GRPO", "grpo", serde_json::json!({"adv_eps": 0.0})),
        (
            "Dr.GRPO",
            "grpo",
            serde_json::json!({"norm_adv_by_std": false}),
        ),
        ("DisCO-b", "disco", serde_json::json!({"variant": "basic"})),
    ];
    println!("per-question weight, G = {g}: measured (closed form)");
    println!(
        "{:>6}  {:>22}  {:>22}  {:>22}",
        "p", "GRPO", "Dr.GRPO", "DisCO-b"
    );
    for p in [0.05f64, 0.2, 0.5, 0.8, 0.95] {
        let closed = [
            (1..g)
                .map(|k| {
                    let kf = k as f64;
                    binomial(k)
                        * p.powf(kf)
                        * (1.0 - p).powf(gf - kf)
                        * (kf * (gf - kf) * (gf - 1.0) / gf).sqrt()
                        / gf
                })
                .sum::<f64>(),
            p * (1.0 - p) * (gf - 1.0) / gf,
            1.0 - p.powf(gf) - (1.0 - p).powf(gf),
        ];
        print!("{p:>6.2}");
        for ((_, algo, config), form) in objectives.iter().zip(closed) {
            let measured = zoo::commands::bandit::expected_weight(algo, config, g, p)?;
            print!("  {:>22}", format!("{measured:.5} ({form:.5})"));
        }
        println!();
    }
    println!(
        "DisCO-b weighs every question by the chance of a mixed group; GRPO and Dr.GRPO shrink the\nweight of hard (p small) and easy (p large) questions (the difficulty bias)."
    );
    Ok(())
}
