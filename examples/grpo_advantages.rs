//! GRPO's group-relative advantages for a group of 8 with k correct, next to the closed form
//! `A+ = (1 − k/G)/σ_k`, `A− = −(k/G)/σ_k`, `σ_k = sqrt(k(G−k)/(G(G−1)))`.
//!
//! Run: `cargo run --example grpo_advantages`

fn main() {
    let g = 8usize;
    println!(" k    A+ (zoo)   A+ (closed)   A- (zoo)   A- (closed)");
    for k in 1..g {
        let rewards: Vec<f32> = (0..g).map(|i| if i < k { 1.0 } else { 0.0 }).collect();
        let a = zoo_grpo::group_advantages(&rewards, &vec![0; g], true, 1e-6);
        let (gf, kf) = (g as f64, k as f64);
        let sigma = (kf * (gf - kf) / (gf * (gf - 1.0))).sqrt();
        println!(
            "{k:>2}   {:>8.5}   {:>10.5}   {:>8.5}   {:>10.5}",
            a[0],
            (1.0 - kf / gf) / sigma,
            a[g - 1],
            -(kf / gf) / sigma
        );
    }
}
