//! The arguments of `zest model generate` and `zest model serve`.

/// `zest model generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The model directory (Hugging Face layout, with tokenizer files).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt as a user turn with the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// A system prompt (with --chat).
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Keep only the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the text contains this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute type: float32, bfloat16, float16 (default: the checkpoint's).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Print a JSON object with token_ids (generated only) and text.
    #[arg(long)]
    pub json: bool,
}

/// `zest model serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The model directory (Hugging Face layout, with tokenizer files).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// The address to listen on (only this machine by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free one; the line printed at start says which).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The model's name in the API (default: the directory's name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Most sequences (prompts × n) generated in one batch.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// How long the first request of a batch waits for others, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub batch_wait_ms: u64,
    /// Device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute type: float32, bfloat16, float16 (default: the checkpoint's).
    #[arg(long)]
    pub dtype: Option<String>,
}
