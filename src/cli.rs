//! The command line (clap derive; each doc comment is the help text).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A zoo of RLVR objectives (GRPO, DAPO, DisCO, CEPO, ...) behind one trainer.
#[derive(Debug, Parser)]
#[command(name = "zoo", version, propagate_version = true)]
pub struct Cli {
    /// Load an algorithm plugin file (`lib<crate>.so`) or every plugin in a folder before
    /// running; repeatable. Dynamic build only; `ZOO_PLUGIN_PATH` and the `plugins/` folder
    /// next to the binary are read too.
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    pub plugins: Vec<std::path::PathBuf>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a policy with an RL objective and report held-out accuracy before and after.
    #[command(after_help = TRAIN_EXAMPLES)]
    Train(TrainArgs),
    /// Warm-start a base policy by supervised training on worked solutions, and cache it.
    #[command(after_help = SFT_EXAMPLES)]
    Sft(SftArgs),
    /// Held-out pass@1 and unbiased pass@k of a policy checkpoint.
    #[command(after_help = EVAL_EXAMPLES)]
    Eval(EvalArgs),
    /// One response of a real language model (`--model`) to a prompt, through its chat
    /// template.
    #[command(after_help = GENERATE_EXAMPLES)]
    Generate(GenerateArgs),
    /// Per-token log-probs of given responses under a real language model, one JSON line per
    /// input line: to check zoo against another implementation.
    #[command(after_help = SCORE_HELP)]
    Score(ScoreArgs),
    /// Work with one objective outside training.
    #[command(subcommand)]
    Objective(ObjectiveCommand),
    /// Run objectives side by side on a toy bandit (the tabular policy, the same trainer).
    #[command(after_help = BANDIT_EXAMPLES)]
    Bandit(BanditArgs),
    /// Train objectives side by side on equal footing (same seeds, base policy, data order),
    /// with confidence intervals, paired differences to a baseline and a report.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Judge responses against gold answers with a verifier, one JSON line in, one verdict out.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Write a LoRA run's checkpoint as a plain Hugging Face model folder, its adapters merged
    /// into the base's weights (`--merge`).
    Export(ExportArgs),
    /// Create a new algorithm crate in `plugins/NAME` from the template, in the workspace.
    NewAlgo(NewAlgoArgs),
    /// The algorithm plugins of this build.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// List the algorithms, tasks, verifiers and devices of this build.
    List,
    /// Tokens per second of sampling and of a training step on the CPU default model, for
    /// every device of this build, with the ratio between devices; with `--model`, one
    /// training step of a real model's shape stage by stage, with MFU and peak memory.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
}

/// `zoo generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A Hugging Face model folder or a `.gguf` file.
    #[arg(long, value_name = "DIR_OR_GGUF")]
    pub model: PathBuf,
    /// A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`; a LoRA
    /// run's checkpoint is one) to load onto `--model`.
    #[arg(long, value_name = "DIR", requires = "model")]
    pub adapter: Option<PathBuf>,
    /// The user message.
    #[arg(long)]
    pub prompt: String,
    /// The most new tokens, the stop token included.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A system message before the prompt [default: the template's own, if any].
    #[arg(long)]
    pub system: Option<String>,
    /// Use the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object: ids, log-probs, text.
    #[arg(long)]
    pub json: bool,
    /// Compute device: `flex`, `tch-cpu`, `tch-cuda:N`.
    #[arg(long, default_value = "flex")]
    pub device: String,
}

const GENERATE_EXAMPLES: &str = "Examples:
  zoo generate --model ~/.cache/zoo/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --prompt \"What is the capital of France?\"
  zoo generate --model ~/models/Qwen2.5-0.5B-Instruct --prompt \"What is 17*23?\" --temperature 1 --seed 3 --json";

/// `zoo score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A Hugging Face model folder or a `.gguf` file.
    #[arg(long, value_name = "DIR_OR_GGUF")]
    pub model: PathBuf,
    /// A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`; a LoRA
    /// run's checkpoint is one) to load onto `--model`.
    #[arg(long, value_name = "DIR", requires = "model")]
    pub adapter: Option<PathBuf>,
    /// The input JSONL file (`-` for stdin).
    #[arg(long)]
    pub input: PathBuf,
    /// Log-probs are of the logits divided by this temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Compute device: `flex`, `tch-cpu`, `tch-cuda:N`.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// The compute dtype (bf16: f32 weights, bf16 activations, f32 log-softmax).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: crate::run_config::ModelDtype,
}

const SCORE_HELP: &str = "Input: one JSON object per line, either
  {\"prompt\": \"user message\", \"response\": \"text\"}          the prompt goes through the chat template
  {\"prompt\": \"text\", \"response\": \"text\", \"chat\": false}   the prompt is tokenized as is
  {\"context_ids\": [1, 2, 3], \"response_ids\": [4, 5]}
The response is tokenized on its own (no special tokens added, nothing appended).
Output: one line per input line, in order (blank input lines are skipped):
  {\"context_ids\": [...], \"response_ids\": [...], \"logprobs\": [one per response token]}

Examples:
  zoo score --model ~/models/Qwen2.5-0.5B-Instruct --input pairs.jsonl
  echo '{\"prompt\": \"2+2?\", \"response\": \"4\"}' | zoo score --model model.gguf --input -";

/// `zoo bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Comma-separated devices [default: every device this build and machine have for the
    /// default model; `flex` with `--model`].
    #[arg(long)]
    pub devices: Option<String>,
    /// The model: `tiny` (the CPU default decoder, the default), a real model's shape with
    /// random weights (`smollm2-135m`, `qwen2.5-0.5b`, `qwen2.5-1.5b`, `qwen3-0.6b`,
    /// `llama3.2-1b`), a config.json, a model folder or a .gguf file (only its config is read).
    #[arg(long, value_name = "SHAPE_OR_SOURCE", default_value = "tiny")]
    pub model: String,
    /// The objective whose gradient the update computes.
    #[arg(long, default_value = "grpo")]
    pub algo: String,
    /// Distinct prompts in the step [default: 64 tiny, 8 otherwise].
    #[arg(long)]
    pub prompts: Option<usize>,
    /// Responses per prompt [default: 4].
    #[arg(long, visible_alias = "group")]
    pub group_size: Option<usize>,
    /// Tokens per prompt (random ids) [default: 9 tiny, 64 otherwise].
    #[arg(long)]
    pub prompt_tokens: Option<usize>,
    /// Tokens per response: every response has exactly this many (stop tokens are held off)
    /// [default: 33 tiny, 256 otherwise].
    #[arg(long, visible_alias = "max-new-tokens")]
    pub response_len: Option<usize>,
    /// Timed rounds after one warm-up round; each stage reports its median [default: 3 tiny,
    /// 1 otherwise].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Rows per micro-batch of the scoring pass and the update [default: 64 tiny, all rows
    /// otherwise].
    #[arg(long)]
    pub micro_batch_rows: Option<usize>,
    /// Token budget per micro-batch (`update.micro_batch_tokens`; 0: no budget) [default: 0
    /// tiny, 4096 otherwise].
    #[arg(long)]
    pub micro_batch_tokens: Option<usize>,
    /// Positions of the output head computed at once (real-model shapes).
    #[arg(long, default_value_t = 1024)]
    pub chunk_positions: usize,
    /// Print JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Instead of a benchmark: check each device's fused attention against the decomposed one
    /// zoo's decoder uses (mask convention, causal alignment with a KV cache).
    #[arg(long)]
    pub check_attention: bool,
    /// Recompute each decoder layer in the backward pass (`model.recompute`; real-model
    /// shapes).
    #[arg(long)]
    pub recompute: bool,
    /// The compute dtype (bf16: f32 master weights, bf16 activations; real-model shapes).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: crate::run_config::ModelDtype,
    /// The device's peak TFLOP/s, for MFU (e.g. 989 for H100/H200 dense BF16, 495 TF32, 67
    /// FP32). Each stage is also reported against the matrix-product rate the bench measures.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
}

const BENCH_EXAMPLES: &str = "Examples:
  zoo bench                              # the tiny model: flex (and tch-cpu, tch-cuda:N with feature `tch`)
  zoo bench --devices flex,tch-cpu --prompts 64 --group-size 4 --response-len 33 --rounds 5
  zoo bench --devices tch-cuda:0 --prompts 256 --json
  zoo bench --model smollm2-135m --devices tch-cpu --algo sdpo
  zoo bench --model qwen2.5-0.5b --devices tch-cuda:0 --prompts 64 --group-size 8 \\
            --response-len 1024 --micro-batch-tokens 16384 --peak-tflops 67
  bench/side-by-side.py --model smollm2-135m   # zoo beside the PyTorch reference";

/// `zoo new-algo`.
#[derive(Debug, Args)]
pub struct NewAlgoArgs {
    /// The algorithm's registry name: lowercase letters, digits, `_`.
    pub name: String,
    /// The zoo repository [default: the current folder or its closest ancestor that has
    /// `plugins/template/`].
    #[arg(long)]
    pub workspace: Option<PathBuf>,
}

/// `zoo plugins ...`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every registered algorithm: name, origin (static or dynamic), file, versions.
    List,
    /// Read a plugin file's declaration (what it was built with, what it links against)
    /// without loading it, and say whether this zoo could load it.
    Inspect {
        /// The plugin file.
        path: std::path::PathBuf,
    },
}

/// `zoo bandit`.
#[derive(Debug, Args)]
pub struct BanditArgs {
    /// The environment: k-armed, two-arm, single-token, difficulty, leakage, leakage-memorize,
    /// sequence.
    #[arg(long)]
    pub env: String,
    /// Comma-separated algorithms, each with optional overrides:
    /// `grpo,grpo[norm_adv_by_std=false],disco[variant="basic"]`.
    #[arg(long)]
    pub algos: String,
    /// Training steps per run.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Seeds per algorithm.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Output folder for curves.csv and results.json [default: runs/bandit-<env>-<time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the final table as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `zoo compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Comma-separated algorithms, each with optional objective overrides:
    /// `grpo,grpo[norm_adv_by_std=false],cepo`.
    #[arg(long, required_unless_present = "report")]
    pub algos: Option<String>,
    /// Seeds per algorithm (seeds 1..=N, the same for every algorithm).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// The algorithm differences are taken against [default: the first of `--algos`].
    #[arg(long)]
    pub baseline: Option<String>,
    /// Task by registry name [default: `zoo train`'s].
    #[arg(long)]
    pub task: Option<String>,
    /// RL steps per run [default: `zoo train`'s].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Compute device for every run [default: flex].
    #[arg(long)]
    pub device: Option<String>,
    /// A real language model for every run (`zoo train --model`: a Hugging Face folder or a
    /// GGUF file); each objective then starts from its LLM defaults (docs/models.md).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// A `zoo train` setting for every run, e.g. `rollout.group_size=4`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Runs at a time (each a `zoo train` process).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Remove each run's checkpoints once it has finished (a real model's full checkpoint,
    /// weights and optimizer moments, is 1.6 GB at 135M parameters); its metrics, eval.json and
    /// log stay, and the comparison still resumes (an unfinished run keeps its checkpoints).
    #[arg(long)]
    pub drop_checkpoints: bool,
    /// Output folder [default: runs/compare-<time>]; rerunning with it resumes the matrix.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rebuild results and report from the finished runs in this folder, training nothing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["algos", "out"])]
    pub report: Option<PathBuf>,
    /// No progress and no table on the terminal.
    #[arg(long, short)]
    pub quiet: bool,
}

const COMPARE_EXAMPLES: &str = "Examples:
  zoo compare --algos grpo,dapo,disco,cepo,rlsd,rlcsd,opsd,sdpo --seeds 5 --out runs/compare-all
  zoo compare --algos 'grpo,grpo[norm_adv_by_std=false]' --baseline grpo --steps 20 --jobs 2
  zoo compare --algos grpo,cepo --model SmolLM2-135M-Instruct.Q4_1.gguf --task jsonl --device tch-cpu \\
    --set 'data.train=[\"examples/data/words-train.jsonl\"]' --set 'data.eval=[\"examples/data/words-eval.jsonl\"]'
  zoo compare --report runs/compare-all";

const BANDIT_EXAMPLES: &str = "Examples:
  zoo bandit --env leakage --algos opsd,sdpo,grpo,rlsd,cepo
  zoo bandit --env difficulty --algos 'grpo,grpo[norm_adv_by_std=false],disco[variant=\"basic\"]' --seeds 5
  zoo bandit --env two-arm --algos grpo,dapo --steps 100 --json";

/// `zoo verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The input JSONL file (`-` for stdin).
    #[arg(long)]
    pub input: PathBuf,
    /// Write the verdicts here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

const VERIFY_HELP: &str = "Input: one JSON object per line
  {\"verifier\": \"math\" | \"countdown\" | \"exact\" | \"choice\" | \"arithmetic\",
   \"answer\": <gold: a string; countdown: {\"target\": 24, \"numbers\": [1, 2, 3, 4]}>,
   \"response\": <model output>}
Output: one verdict per input line, in order:
  {\"correct\": bool, \"score\": number, \"extracted\": string | null, \"parsed\": bool, \"reason\": string}
A line that cannot be read gets a verdict with \"parsed\": false and the reason; the file goes on.

Examples:
  zoo verify --input responses.jsonl
  echo '{\"verifier\": \"math\", \"answer\": \"1000\", \"response\": \"\\\\boxed{1,000}\"}' | zoo verify --input -";

/// `zoo objective ...`.
#[derive(Debug, Subcommand)]
pub enum ObjectiveCommand {
    /// Evaluate one objective on given numbers: loss, gradient, advantages and metrics as JSON,
    /// to check it against another implementation.
    #[command(after_help = OBJECTIVE_EVAL_HELP)]
    Eval(ObjectiveEvalArgs),
}

/// `zoo objective eval`.
#[derive(Debug, Args)]
pub struct ObjectiveEvalArgs {
    /// The input JSON file (`-` for stdin).
    #[arg(long)]
    pub input: PathBuf,
    /// Pretty-print the output.
    #[arg(long)]
    pub pretty: bool,
    /// Compute device: `flex`, `tch-cpu`, `tch-cuda:N` [default: flex].
    #[arg(long, default_value = "flex")]
    pub device: String,
}

const OBJECTIVE_EVAL_HELP: &str = "Input: one JSON object
  {\"algo\": \"grpo|dapo|disco|cepo|rlsd|rlsd-cepo|rlcsd|opsd|sdpo\",
   \"config\": {clip_low, clip_high, clip_dual, loss_agg, loss_scale, adv_eps, norm_adv_by_std,
              kl_coef, kl_estimator, score, variant, tau, delta, beta, lambda, lambda_schedule,
              decay_steps, eps_w, jsd_beta, temperature, topk, tail, accuracy_reward,
              dynamic_sampling, overlong_buffer, overlong_buffer_len, overlong_penalty_factor,
              lam, eta, residual_clip_low, residual_clip_high, k_max}
              (absent keys take the objective's defaults; null is \"none\" for an optional
              one, e.g. \"topk\": null),
   \"training\": {step, max_new_tokens, temperature} (optional: build the objective as the
              trainer does, with DAPO's reward shaping and group filter and the λ schedules
              at `step`; without it, the loss on the numbers given, `lambda` being this
              step's value),
   \"batch\": {rewards [N], group_ids [N], mask [N][T], logprobs, old_logprobs, ref_logprobs,
              teacher_logprobs, teacher_pos_logprobs [N][T], teacher_neg_logprobs [N][T] or
              [N][K][T] (rlcsd: K wrong-hint teachers), teacher_neg_valid [N][K] and hint_mask
              [N] (0/1: slot k is real, the row has hints; absent: all),
              student_logits, teacher_logits [N][T][V]}}
  Keys an objective does not read may be absent (opsd and sdpo need only mask,
  student_logits and teacher_logits).
Output: {\"loss\", \"grad\" (d loss / d logprobs, or d loss / d student_logits), \"advantages\"
  (grpo, dapo, cepo, rlsd, rlcsd; zeros for the others), \"metrics\", \"kept_rows\" (the rows dynamic
  sampling kept; the others get zero gradient), \"unused_config\"}. A parity fixture file
  ({\"description\", \"input\", \"expected\"}) is read for its input.

Examples:
  zoo objective eval --input tests/fixtures/objectives/grpo_clip_regimes.json
  zoo objective eval --input - < batch.json";

const TRAIN_EXAMPLES: &str = "Examples:
  zoo train --algo grpo
  zoo train --algo grpo --steps 10 --seed 1 --out runs/grpo-s1
  zoo train --algo grpo --set objective.norm_adv_by_std=false --set objective.loss_agg=constant
  zoo train --algo grpo --task mod10 --dry-run
  zoo train --algo cepo --model ~/models/Qwen2.5-0.5B-Instruct --task jsonl --device tch-cuda:0 \\
      --set 'data.train=[\"../shared/datasets/gsm8k-train.jsonl\"]' --set 'data.eval=[\"../shared/datasets/gsm8k-test.jsonl\"]'";

const SFT_EXAMPLES: &str = "Examples:
  zoo sft
  zoo sft --task mod10 --steps 150";

const EVAL_EXAMPLES: &str = "Examples:
  zoo eval
  zoo eval --checkpoint runs/grpo-s1 --samples 8 --temperature 1
  zoo eval --model ~/.cache/zoo/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --task jsonl \\
      --set 'data.eval=[\"../shared/datasets/gsm8k-test.jsonl\"]' --problems 50";

/// `zoo train`.
#[derive(Debug, Args, Default)]
pub struct TrainArgs {
    /// The objective, by registry name (`zoo list`); may come from `--config` instead.
    #[arg(long, help_heading = "Objective")]
    pub algo: Option<String>,
    /// RL steps [default: 30].
    #[arg(long, help_heading = "Run")]
    pub steps: Option<usize>,
    /// RL seed: prompt stream and sampling [default: 0].
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// Task by registry name [default: addition-habit].
    #[arg(long, help_heading = "Data")]
    pub task: Option<String>,
    /// A real language model to train: a Hugging Face folder (config.json, safetensors,
    /// tokenizer.json) or a `.gguf` file [default: the CPU world's tiny decoder].
    #[arg(long, value_name = "DIR_OR_GGUF", help_heading = "Objective")]
    pub model: Option<PathBuf>,
    /// A PEFT LoRA adapter folder to load onto `--model` and train on (`model.adapter`); fresh
    /// adapters instead: `--set model.lora.rank=16` (docs/models.md).
    #[arg(long, value_name = "DIR", help_heading = "Objective")]
    pub adapter: Option<PathBuf>,
    /// Output folder: config.toml, metrics.jsonl, a TensorBoard event file, eval.json,
    /// checkpoints/ [default: runs/<algo>-<task>-s<seed>-<time>].
    #[arg(long, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Continue the run in `--out` from its latest checkpoint.
    #[arg(long, requires = "out", help_heading = "Output")]
    pub resume: bool,
    /// A TOML file of settings (the format `--dry-run` prints).
    #[arg(long, help_heading = "Run")]
    pub config: Option<PathBuf>,
    /// Override one setting, e.g. `optim.lr=1e-4` or `objective.clip_high=0.28`; repeatable,
    /// the last wins.
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = "Run")]
    pub set: Vec<String>,
    /// Compute device: `flex` (pure-Rust CPU), `tch-cpu`, `tch-cuda:N` [default: flex].
    #[arg(long, help_heading = "Run")]
    pub device: Option<String>,
    /// Print the resolved configuration and stop.
    #[arg(long, help_heading = "Run")]
    pub dry_run: bool,
    /// No progress on stderr.
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// Data-parallel training, one process per rank started by a launcher: `mpi` (CPU ranks
    /// under `mpirun` or `srun`; build with `--features mpi`) or `nccl` (one GPU per rank under
    /// `torchrun`, `srun` or `mpirun`; build with `--features tch,nccl`). See
    /// docs/distributed.md.
    #[arg(long, value_name = "ENGINE", help_heading = "Distributed")]
    pub dist: Option<String>,
    /// Seconds a rank waits in one collective before the run stops with an error (a rank
    /// hangs or died) [default: 1800; evaluations on rank 0 count].
    #[arg(long, value_name = "SECONDS", help_heading = "Distributed")]
    pub dist_timeout: Option<u64>,
    /// Reuse the base policy's held-out evaluation from this folder when the same weights,
    /// task, data, evaluation settings, seed and device were evaluated there, else evaluate and
    /// store it (`zoo compare` passes its own: one base evaluation per seed, not per run).
    #[arg(long, value_name = "DIR", help_heading = "Run")]
    pub base_eval_cache: Option<PathBuf>,
}

/// `zoo export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A LoRA checkpoint folder (`adapter_config.json`, `adapter_model.safetensors`), e.g.
    /// `runs/X/checkpoints/step-000100`, or any PEFT adapter folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The base model [default: `base_model_name_or_path` of the adapter's config, which a zoo
    /// run sets to its `--model`].
    #[arg(long, value_name = "DIR_OR_GGUF")]
    pub model: Option<PathBuf>,
    /// Fold the adapters into the weights (`W + alpha/r · B A`, PEFT's `merge_and_unload`).
    #[arg(long, required = true)]
    pub merge: bool,
    /// The folder to write: config.json, model.safetensors, tokenizer files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `zoo sft`.
#[derive(Debug, Args, Default)]
pub struct SftArgs {
    /// Task by registry name [default: addition-habit].
    #[arg(long)]
    pub task: Option<String>,
    /// Warm-start seed [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Warm-start steps [default: 300].
    #[arg(long)]
    pub steps: Option<usize>,
    /// A TOML file of settings (its `warm_start` section is used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one setting, e.g. `warm_start.sft.batch_size=64`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Compute device [default: flex].
    #[arg(long)]
    pub device: Option<String>,
    /// Also write the result into the source tree's `assets/base/` (for maintainers).
    #[arg(long)]
    pub ship: bool,
    /// Print the resolved warm-start settings and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `zoo eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A policy `.safetensors` file, a checkpoint folder or a run folder; default: the base
    /// policy of the default warm-start settings.
    #[arg(long, conflicts_with = "model")]
    pub checkpoint: Option<PathBuf>,
    /// A real language model: a Hugging Face folder (an LLM run's checkpoint folder is one)
    /// or a `.gguf` file.
    #[arg(long, value_name = "DIR_OR_GGUF")]
    pub model: Option<PathBuf>,
    /// A PEFT LoRA adapter folder (`adapter_config.json`, `adapter_model.safetensors`; a LoRA
    /// run's checkpoint is one) to load onto `--model`.
    #[arg(long, value_name = "DIR", requires = "model")]
    pub adapter: Option<PathBuf>,
    /// A task setting, e.g. `data.eval=["../shared/datasets/gsm8k-test.jsonl"]`; repeatable.
    #[arg(long = "set", value_name = "data.KEY=VALUE")]
    pub set: Vec<String>,
    /// Response length cap in tokens [default: the task's].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Task by registry name.
    #[arg(long, default_value = "addition-habit")]
    pub task: String,
    /// Samples per problem (pass@k is reported for powers of two up to it).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Held-out problems to evaluate.
    #[arg(long, default_value_t = 400)]
    pub problems: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute device.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Also write every response as a JSON line (prompt, gold answer, response, verdict,
    /// response features) to this file.
    #[arg(long, value_name = "FILE.jsonl")]
    pub responses: Option<PathBuf>,
}
