//! The batched transformer forward: the host side of the device split.
//!
//! A batch of nonces runs together: the projections and the MLP are products with
//! `batch × seq_len` rows (one device call each), attention is one streamed batch per layer with a
//! product per nonce and head. Everything else — RMSNorm, RoPE, softmax, SiLU, residual adds,
//! layer reflections — runs here in fixed-order `f32` code. Every row is computed independently
//! of the others, so artifact bits do not depend on the batch size.
//!
//! Rounding points (all round-to-nearest-even into the model dtype, "round" below), following
//! what GPU inference engines do with a bf16/f16 model (`docs/numerics.md` lists them in full):
//!
//! 1. input embeddings: `round(normal(...))`;
//! 2. RMSNorm: `t = round(x · r)` with `r = 1/√(mean(x²) + ε)` in `f32`, output `round(w · t)`;
//! 3. q/k/v, o, gate/up, down products: `f32` accumulation from the bias (or +0), output rounded;
//! 4. Qwen3 q/k norms: RMSNorm over each head (rule 2);
//! 5. RoPE: `cos`, `sin` rounded to the dtype; `round(round(x₁·c) − round(x₂·s))` and
//!    `round(round(x₂·c) + round(x₁·s))`;
//! 6. attention scores `Q·Kᵀ` in `f32` (not rounded), scaled by `1/√head_dim` in `f32`, causal
//!    softmax in `f32`, probabilities rounded, `P·V` rounded;
//! 7. residual adds `round(h + y)`;
//! 8. MLP: `round(round(silu(g)) · u)`;
//! 9. layer reflection: `round(h − t·v)` with `t = 2·(v·h)` in `f32`;
//! 10. final RMSNorm (rule 2) at the last position, decoded to `f32`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::artifact::{artifact_from_hidden, Artifact, Round, RoundParams};
use super::config::{Dtype, ModelConfig};
use super::device::{
    BatchLayout, BatchSpec, MatOut, MatmulDevice, Strided, WeightHandle, WeightUpload,
};
use super::inputs::input_embeddings;
use super::lanes::{self, Reduction, ROW_LANES};
use super::math;
use super::model::{ModelSource, TensorSpec};
use super::tile::{self, TILE};
use super::{DeviceError, PocError};

/// Defines `fn name<H: Half>(args)` that runs its body compiled for AVX-512 (or AVX2) when the
/// CPU has it, so host loops vectorise wider. The operations and their bits are the same either way (FMA is
/// not enabled, and Rust never contracts `a·b + c`).
macro_rules! simd_fn {
    ($(#[$meta:meta])* fn $name:ident<H>($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        fn $name<H: Half>($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<H: Half>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2<H: Half>($($arg: $ty),*) {
                body::<H>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512<H: Half>($($arg: $ty),*) {
                body::<H>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: AVX-512 F/BW/VL support was just detected at run time.
                return unsafe { avx512::<H>($($arg),*) };
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 support was just detected at run time.
                return unsafe { avx2::<H>($($arg),*) };
            }
            body::<H>($($arg),*)
        }
    };
}

/// Host-side tensors and device handles of one layer.
struct Layer {
    input_norm: Vec<f32>,
    post_norm: Vec<f32>,
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    qkv: WeightHandle,
    o: WeightHandle,
    gate_up: WeightHandle,
    down: WeightHandle,
}

/// Where the time of a run went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    /// Time inside device calls (the matrix products).
    pub device: Duration,
    /// Total forward time (device plus host), the critical path.
    pub total: Duration,
    /// Host work done on a background thread while the forward ran, off the critical path and
    /// not part of `total`: the next batch's input embeddings and their first RMSNorm, and the
    /// previous batch's artifact steps in [`Engine::artifacts`] (wall time of that thread). Waiting for it, if it is late,
    /// counts in `total` as host time.
    pub overlapped: Duration,
    /// Nonces computed.
    pub nonces: u64,
}

impl Timing {
    /// Time on the host (everything but the matrix products).
    pub fn host(&self) -> Duration {
        self.total.saturating_sub(self.device)
    }

    /// Host share of the total, in `[0, 1]`.
    pub fn host_fraction(&self) -> f64 {
        if self.total.is_zero() {
            0.0
        } else {
            self.host().as_secs_f64() / self.total.as_secs_f64()
        }
    }
}

/// A model made resident on a device, ready to compute hidden states and artifacts.
pub struct Engine<D: MatmulDevice> {
    config: ModelConfig,
    device: D,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    inv_freq: Vec<f32>,
    silu: SiluTable,
    timing: Timing,
    host: HostPool,
    scratch: Scratch,
}

/// Activation buffers reused across layers and batches. Allocating them afresh each step costs a
/// page fault per 4 KiB on first touch (the allocator returns large blocks to the kernel), which
/// on the `small` preset was a third of the host's time; the values never carry over (each use
/// sizes and fills its buffer before reading it).
#[derive(Default)]
struct Scratch {
    h: Vec<u16>,
    xn: Vec<u16>,
    qkv: Vec<u16>,
    o: Vec<u16>,
    gu: Vec<u16>,
    act: Vec<u16>,
    down: Vec<u16>,
    attention: AttentionScratch,
}

/// One nonce's parts in the attention gather: its query and transposed-key blocks (out) and its
/// fused q|k|v rows (in), as rayon's zipped chunks hand them over.
type GatherParts<'a> = ((&'a mut [u16], &'a mut [u16]), &'a [u16]);

/// The attention step's buffers (see [`Scratch`]).
#[derive(Default)]
struct AttentionScratch {
    /// Query rows of every nonce and head.
    qa: Vec<u16>,
    /// Keys, transposed per nonce and head.
    kt: Vec<u16>,
    scores: Vec<f32>,
    probs: Vec<u16>,
    /// The result: attention output rows, `q_dim` wide.
    out: Vec<u16>,
}

/// The first `len` elements of `buf`, for a caller that overwrites every one of them before
/// reading any (a device output, a row-by-row result). What it held is left in place rather
/// than cleared (clearing was a tenth of the host's time on the `small` preset), and the buffer
/// only ever grows: shrinking it for the last layer's few rows and growing it back for the next
/// batch filled megabytes with zeros per batch.
fn overwritten<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// `buf` resized to exactly `len` (growing fills with zeros), for a buffer whose length is
/// handed on: the input embeddings swapped between the background thread and the forward.
fn resized<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.resize(len, T::default());
    buf
}

/// The host's worker threads (a persistent pool: spawning threads per step costs more than the
/// step on small models).
struct HostPool {
    threads: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl<D: MatmulDevice> std::fmt::Debug for Engine<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("device", &self.device.describe())
            .finish()
    }
}

fn decode_all(dtype: Dtype, bits: &[u16]) -> Vec<f32> {
    bits.iter().map(|&b| dtype.decode(b)).collect()
}

impl<D: MatmulDevice> Engine<D> {
    /// Reads every tensor of `source` and makes the matrices resident on `device` (q/k/v fused
    /// into one weight, gate/up into another: fusing output columns does not change any bit).
    pub fn load(source: &dyn ModelSource, mut device: D) -> Result<Self, PocError> {
        let config = source.config().clone();
        config.validate()?;
        let dtype = config.dtype;
        let precision = dtype.precision();
        let get = |spec: &TensorSpec| source.tensor(spec);
        let vector = |spec: &TensorSpec| -> Result<Vec<f32>, PocError> {
            Ok(decode_all(dtype, &get(spec)?))
        };
        device.release_weights()?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let names = config.layer_names(i);
            let mut upload = |name: String,
                              parts: &[&TensorSpec],
                              biases: Option<Vec<&TensorSpec>>|
             -> Result<WeightHandle, PocError> {
                let mut bt = Vec::new();
                let mut n = 0;
                for spec in parts {
                    bt.extend(get(spec)?);
                    n += spec.shape[0];
                }
                let bias = match biases {
                    Some(specs) => {
                        let mut b = Vec::with_capacity(n);
                        for spec in specs {
                            b.extend(vector(spec)?);
                        }
                        Some(b)
                    }
                    None => None,
                };
                let k = parts[0].shape[1];
                Ok(device.upload_weight(&WeightUpload {
                    name: &name,
                    precision,
                    k,
                    n,
                    bt: &bt,
                    bias: bias.as_deref(),
                })?)
            };
            let qkv = upload(
                format!("layer{i}.qkv"),
                &[&names.q, &names.k, &names.v],
                names.qkv_bias.as_ref().map(|b| b.iter().collect()),
            )?;
            let o = upload(
                format!("layer{i}.o"),
                &[&names.o],
                names.o_bias.as_ref().map(|b| vec![b]),
            )?;
            let gate_up = upload(
                format!("layer{i}.gate_up"),
                &[&names.gate, &names.up],
                names.mlp_bias.as_ref().map(|b| vec![&b[0], &b[1]]),
            )?;
            let down = upload(
                format!("layer{i}.down"),
                &[&names.down],
                names.mlp_bias.as_ref().map(|b| vec![&b[2]]),
            )?;
            let qk_norm = match &names.qk_norm {
                Some([q, k]) => Some((vector(q)?, vector(k)?)),
                None => None,
            };
            layers.push(Layer {
                input_norm: vector(&names.input_norm)?,
                post_norm: vector(&names.post_norm)?,
                qk_norm,
                qkv,
                o,
                gate_up,
                down,
            });
        }
        let final_norm = vector(&config.final_norm_name())?;
        let inv_freq = config.rope_inv_freq();
        Ok(Engine {
            config,
            device,
            layers,
            final_norm,
            inv_freq,
            silu: SiluTable::new(dtype),
            timing: Timing::default(),
            host: HostPool {
                threads: 1,
                pool: None,
            },
            scratch: Scratch::default(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// Time spent so far.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Sizes the forward's activation buffers for batches of up to `batch_size` nonces of
    /// `seq_len` positions now, as an inference engine sizes its workspace at start-up, rather
    /// than in the first batch: growing them there zero-fills and page-faults about 10 MB on
    /// the `small` preset with batch 32, which on the benchmark machine took 8 ms of that
    /// batch's host time. Larger batches still grow them when they come; nothing else changes.
    pub fn reserve(&mut self, batch_size: usize, seq_len: usize) {
        let c = &self.config;
        let rows = batch_size.max(1) * seq_len.max(1);
        let products = batch_size.max(1) * c.num_heads;
        let (d, f) = (c.hidden_size, c.intermediate_size);
        let sc = &mut self.scratch;
        for (buf, len) in [
            (&mut sc.h, rows * d),
            (&mut sc.xn, rows * d),
            (&mut sc.qkv, rows * (c.q_dim() + 2 * c.kv_dim())),
            (&mut sc.o, rows * d),
            (&mut sc.gu, rows * 2 * f),
            (&mut sc.act, rows * f),
            (&mut sc.down, rows * d),
            (&mut sc.attention.qa, rows * c.q_dim()),
            (&mut sc.attention.kt, rows * c.q_dim()),
            (&mut sc.attention.probs, products * seq_len * seq_len),
            (&mut sc.attention.out, rows * c.q_dim()),
        ] {
            overwritten(buf, len);
        }
        overwritten(&mut sc.attention.scores, products * seq_len * seq_len);
    }

    /// Splits the host's elementwise work over `threads` threads (rows are independent, so the
    /// bits do not depend on it).
    pub fn set_host_threads(&mut self, threads: usize) {
        let threads = threads.max(1);
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("golden-host-{i}"))
                    .build()
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        self.host = HostPool { threads, pool };
    }

    /// Runs the host's elementwise work on `pool` (its threads), typically the pool of a
    /// [`super::cpu::CpuDevice`] ([`super::cpu::CpuDevice::pool`]). Sharing one pool is what a
    /// CPU device wants: with a pool each, the device's idle workers spin on the cores the
    /// host's workers were just woken for, and the host's passes barely gain from the second
    /// thread.
    pub fn set_host_pool(&mut self, pool: Arc<rayon::ThreadPool>) {
        let threads = pool.current_num_threads().max(1);
        self.host = HostPool {
            threads,
            pool: (threads > 1).then_some(pool),
        };
    }

    /// Resets the time counters.
    pub fn reset_timing(&mut self) {
        self.timing = Timing::default();
    }

    /// Artifacts of `nonces` (in order; dropped NaN nonces are absent), `batch_size` nonces per
    /// forward pass. The bits do not depend on `batch_size`.
    ///
    /// With several batches, a background thread works while batch `i` runs, as a host would
    /// while its device computes ([`Timing::overlapped`]): it finishes batch `i − 1`'s artifacts
    /// (steps 8–12) and prepares batch `i + 1`'s inputs ([`BatchInputs`]: they depend on nothing
    /// but the round, the nonces and the weights).
    pub fn artifacts(
        &mut self,
        round: &Round,
        nonces: &[u64],
        batch_size: usize,
    ) -> Result<Vec<Artifact>, PocError> {
        // The batch loop runs on one of the host pool's workers (see
        // [`Engine::hidden_states_from`]): handing each batch's forward to a worker from outside
        // took about half a millisecond per batch on the loaded benchmark machine.
        match self.host.pool.clone() {
            Some(pool) => pool.install(|| self.run_batches(round, nonces, batch_size)),
            None => self.run_batches(round, nonces, batch_size),
        }
    }

    /// [`Engine::artifacts`], on the calling thread.
    fn run_batches(
        &mut self,
        round: &Round,
        nonces: &[u64],
        batch_size: usize,
    ) -> Result<Vec<Artifact>, PocError> {
        let (d, dt, eps) = (
            self.config.hidden_size,
            self.config.dtype,
            self.config.rms_norm_eps,
        );
        let params = &round.params;
        let first_norm = self.layers.first().map(|layer| layer.input_norm.clone());
        let first_norm = first_norm.as_deref();
        let batches: Vec<&[u64]> = nonces.chunks(batch_size.max(1)).collect();
        let mut out = Vec::with_capacity(nonces.len());
        std::thread::scope(|scope| {
            let mut pending: Option<std::thread::ScopedJoinHandle<'_, Background>> = None;
            // The buffers the previous batch's inputs were swapped out of, for the next ones.
            let mut spare = BatchInputs::default();
            // The previous batch and its hidden states, whose artifacts are still to compute.
            let mut finished: Option<(&[u64], Vec<Vec<f32>>)> = None;
            for (i, &batch) in batches.iter().enumerate() {
                let mut inputs = None;
                if let Some(handle) = pending.take() {
                    let wait = Instant::now();
                    let done = handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    self.timing.total += wait.elapsed();
                    self.timing.overlapped += done.spent;
                    out.extend(done.artifacts);
                    inputs = Some(done.inputs);
                }
                let next = batches.get(i + 1).copied();
                if next.is_some() || finished.is_some() {
                    let mut buf = std::mem::take(&mut spare);
                    let previous = finished.take();
                    pending = Some(scope.spawn(move || {
                        let start = Instant::now();
                        let artifacts = match &previous {
                            Some((batch, hidden)) => artifacts_of(round, batch, hidden, None),
                            None => Vec::new(),
                        };
                        if let Some(next) = next {
                            let len = next.len() * params.seq_len * d;
                            let BatchInputs { embeddings, normed } = &mut buf;
                            embed_into(resized(embeddings, len), params, next, d, dt);
                            if let Some(w) = first_norm {
                                let normed = resized(normed, len);
                                with_half!(dt, H => rmsnorm_into::<H>(embeddings, d, w, eps, normed));
                            }
                        }
                        Background {
                            artifacts,
                            inputs: buf,
                            spent: start.elapsed(),
                        }
                    }));
                }
                let hidden = self.hidden_states_from(round, batch, inputs.as_mut())?;
                if let Some(old) = inputs {
                    spare = old;
                }
                finished = Some((batch, hidden));
            }
            if let Some(handle) = pending.take() {
                let wait = Instant::now();
                let done = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                self.timing.total += wait.elapsed();
                self.timing.overlapped += done.spent;
                out.extend(done.artifacts);
            }
            // The last batch's steps 8–12 have nothing left to overlap with: host time.
            if let Some((batch, hidden)) = finished {
                let start = Instant::now();
                // Nothing is left to overlap with: the nonces' steps side by side.
                let pool = self.host.pool.as_deref();
                out.extend(artifacts_of(round, batch, &hidden, pool));
                self.timing.total += start.elapsed();
            }
            Ok::<(), PocError>(())
        })?;
        Ok(out)
    }

    /// The final-norm hidden state at the last position, in `f32`, for each nonce of one batch.
    pub fn hidden_states(
        &mut self,
        round: &Round,
        nonces: &[u64],
    ) -> Result<Vec<Vec<f32>>, PocError> {
        self.hidden_states_from(round, nonces, None)
    }

    /// [`Engine::hidden_states`], from the batch's prepared inputs when `inputs` holds them
    /// (they are swapped in, and `inputs` gets spare buffers back).
    fn hidden_states_from(
        &mut self,
        round: &Round,
        nonces: &[u64],
        inputs: Option<&mut BatchInputs>,
    ) -> Result<Vec<Vec<f32>>, PocError> {
        if round.hidden_size != self.config.hidden_size
            || round.reflections.len() != self.config.num_layers
        {
            return Err(PocError::Params(format!(
                "the round was prepared for hidden size {} and {} layers, the model has {} and {}",
                round.hidden_size,
                round.reflections.len(),
                self.config.hidden_size,
                self.config.num_layers
            )));
        }
        if nonces.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        // The pool is moved out while the forward borrows the engine mutably.
        let host = std::mem::replace(
            &mut self.host,
            HostPool {
                threads: 1,
                pool: None,
            },
        );
        let mut scratch = std::mem::take(&mut self.scratch);
        // The forward runs on one of the pool's workers, so that each host pass (and each
        // product of a CPU device sharing the pool) starts and ends there: called from outside,
        // every one of them is a hand-off to a worker and a wake-up of this thread when it is
        // done, a dozen per layer. (From [`Engine::artifacts`] it is on a worker already.)
        let result = match host.pool.clone() {
            Some(pool) => pool.install(|| self.forward(&host, &mut scratch, round, nonces, inputs)),
            None => self.forward(&host, &mut scratch, round, nonces, inputs),
        };
        self.host = host;
        self.scratch = scratch;
        self.timing.total += start.elapsed();
        self.timing.nonces += nonces.len() as u64;
        result
    }

    fn forward(
        &mut self,
        host: &HostPool,
        scratch: &mut Scratch,
        round: &Round,
        nonces: &[u64],
        inputs: Option<&mut BatchInputs>,
    ) -> Result<Vec<Vec<f32>>, PocError> {
        let c = self.config.clone();
        let (d, s, dt) = (c.hidden_size, round.params.seq_len, c.dtype);
        let p = &round.params;
        let Scratch {
            h,
            xn,
            qkv,
            o,
            gu,
            act,
            down,
            attention,
        } = scratch;
        let len = nonces.len() * s * d;
        // Whether `xn` holds the first layer's normed inputs already.
        let normed = match inputs {
            Some(inputs) if inputs.embeddings.len() == len && inputs.normed.len() == len => {
                std::mem::swap(h, &mut inputs.embeddings);
                std::mem::swap(xn, &mut inputs.normed);
                true
            }
            _ => {
                let h_rows = resized(h, len);
                par_rows(host, h_rows, s * d, nonces, 1, |h, nonces| {
                    embed_into(h, p, nonces, d, dt);
                });
                false
            }
        };
        let rope = RopeTable::new(&self.inv_freq, s, dt);
        let nb = nonces.len();
        let f = c.intermediate_size;
        let qkv_width = c.q_dim() + 2 * c.kv_dim();
        // Rows of `h` still computed: every position, then only the last one in the last layer
        // (`h` itself keeps its length, so it can be handed on whole).
        let mut rows = nb * s;
        for li in 0..self.layers.len() {
            let last = li + 1 == self.layers.len();
            // Attention block.
            let layer = &self.layers[li];
            let (qkv_handle, o_handle) = (layer.qkv, layer.o);
            if li == 0 && !normed {
                // Later layers get their input norm from the previous layer's last pass.
                let xn = overwritten(xn, rows * d);
                par_rmsnorm(
                    host,
                    &h[..rows * d],
                    d,
                    &layer.input_norm,
                    c.rms_norm_eps,
                    dt,
                    xn,
                );
            }
            let qkv = overwritten(qkv, rows * qkv_width);
            let xn_rows = &xn[..rows * d];
            self.on_device(|dev| dev.matmul_weight(qkv_handle, xn_rows, rows, out(dt, qkv)))?;
            if last {
                // Only the last position feeds the artifact: keep its rows from here on.
                for b in 0..nb {
                    h.copy_within(((b + 1) * s - 1) * d..(b + 1) * s * d, b * d);
                }
                rows = nb;
            }
            let h = &mut h[..rows * d];
            self.attention(host, attention, qkv, s, li, &rope)?;
            let o = overwritten(o, rows * d);
            let attn = &attention.out[..rows * c.q_dim()];
            self.on_device(|dev| dev.matmul_weight(o_handle, attn, rows, out(dt, o)))?;
            // Residual add and the MLP block's RMSNorm, in one pass over `h`.
            let layer = &self.layers[li];
            let (gate_up_handle, down_handle) = (layer.gate_up, layer.down);
            let (post_norm, eps) = (&layer.post_norm, c.rms_norm_eps);
            let xn = overwritten(xn, rows * d);
            par_rows_pair(host, h, xn, d, o, |h, xn, o| {
                with_half!(dt, H => residual_rmsnorm_into::<H>(h, o, d, post_norm, eps, xn));
            });
            let gu = overwritten(gu, rows * 2 * f);
            self.on_device(|dev| dev.matmul_weight(gate_up_handle, xn, rows, out(dt, gu)))?;
            let act = overwritten(act, rows * f);
            let silu = &self.silu.0;
            par_rows(host, act, f, gu, 2 * f, |act, gu| {
                with_half!(dt, H => swiglu::<H>(act, gu, f, silu));
            });
            let down = overwritten(down, rows * d);
            self.on_device(|dev| dev.matmul_weight(down_handle, act, rows, out(dt, down)))?;
            // Residual add, the network's layer reflection, and the next RMSNorm.
            let v = &round.reflections[li];
            let next_norm = match self.layers.get(li + 1) {
                Some(next) => &next.input_norm,
                None => &self.final_norm,
            };
            par_rows_pair(host, h, xn, d, down, |h, xn, down| {
                with_half!(dt, H => residual_reflect_rmsnorm_into::<H>(h, down, d, v, next_norm, eps, xn));
            });
        }
        let normed = &xn[..nonces.len() * d];
        Ok(normed
            .chunks_exact(d)
            .map(|row| decode_all(dt, row))
            .collect())
    }

    /// Runs one device call, adding its time to the device share.
    fn on_device(
        &mut self,
        call: impl FnOnce(&mut D) -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError> {
        let start = Instant::now();
        let result = call(&mut self.device);
        self.timing.device += start.elapsed();
        result
    }

    /// Causal grouped-query attention of layer `li` for every nonce and head: returns the
    /// attention output rows (`q_dim` wide, in the dtype) for every position, or only the last
    /// position in the last layer.
    fn attention(
        &mut self,
        host: &HostPool,
        bufs: &mut AttentionScratch,
        qkv: &[u16],
        s: usize,
        li: usize,
        rope: &RopeTable,
    ) -> Result<(), PocError> {
        let last_only = li + 1 == self.layers.len();
        let c = self.config.clone();
        let (hd, dt) = (c.head_dim, c.dtype);
        let qkv_width = c.q_dim() + 2 * c.kv_dim();
        let nb = qkv.len() / (s * qkv_width);
        let queries: Vec<usize> = if last_only {
            vec![s - 1]
        } else {
            (0..s).collect()
        };
        let m = queries.len();
        let count = nb * c.num_heads;
        let AttentionScratch {
            qa,
            kt,
            scores,
            probs,
            out: attn,
        } = bufs;
        // Scores: A = Q rows of the queried positions, B = Kᵀ. Laid out nonce-major, so each
        // nonce's part is gathered independently (in parallel), with the q/k norms and RoPE
        // applied on the way. The values are read in place, from the q|k|v rows.
        let (heads, q_dim) = (c.num_heads, c.q_dim());
        let (per_q, per_k) = (heads * m * hd, heads * hd * s);
        let qa = overwritten(qa, nb * per_q);
        let kt = overwritten(kt, nb * per_k);
        let dims = AttentionDims {
            s,
            hd,
            heads,
            kv_heads: c.num_kv_heads,
            q_dim,
            kv_dim: c.kv_dim(),
        };
        let (norm, eps) = (self.layers[li].qk_norm.as_ref(), c.rms_norm_eps);
        let queries = &queries[..];
        let gather = |((qa, kt), x): GatherParts<'_>| {
            with_half!(dt, H => gather_nonce::<H>(x, qa, kt, dims, queries, rope, norm, eps));
        };
        match &host.pool {
            Some(pool) if nb > 1 => {
                use rayon::prelude::*;
                pool.install(|| {
                    qa.par_chunks_mut(per_q)
                        .zip(kt.par_chunks_mut(per_k))
                        .zip(qkv.par_chunks(s * qkv_width))
                        .for_each(gather)
                });
            }
            _ => qa
                .chunks_mut(per_q)
                .zip(kt.chunks_mut(per_k))
                .zip(qkv.chunks(s * qkv_width))
                .for_each(gather),
        }
        let precision = dt.precision();
        let scores = overwritten(scores, count * m * s);
        let spec = BatchSpec {
            precision,
            count,
            m,
            k: hd,
            n: s,
        };
        self.on_device(|dev| dev.matmul_batch(&spec, qa, kt, MatOut::F32(scores)))?;
        let scale = 1.0f32 / (hd as f32).sqrt();
        // Masked positions are +0: exact zero products leave the accumulator unchanged.
        let probs = overwritten(probs, count * m * s);
        let width = m * s; // one product: m query rows of s scores
        par_rows(host, probs, width, scores, width, |probs, scores| {
            with_half!(dt, H => softmax_rows::<H>(probs, scores, s, queries, scale));
        });
        // P·V: each product's values straight from the q|k|v rows (nonce `b`, key/value head
        // `head / group`), each result straight into the attention output rows (row `t` of
        // nonce `b`, columns of `head`), which the o projection reads.
        let spec = BatchSpec {
            precision,
            count,
            m,
            k: s,
            n: hd,
        };
        let values = BatchLayout {
            base: q_dim + c.kv_dim(),
            outer_stride: s * qkv_width,
            inner_count: heads,
            inner_group: heads / c.num_kv_heads,
            inner_stride: hd,
            row_stride: qkv_width,
        };
        let attn = overwritten(attn, nb * m * q_dim);
        let rows = BatchLayout {
            base: 0,
            outer_stride: m * q_dim,
            inner_count: heads,
            inner_group: 1,
            inner_stride: hd,
            row_stride: q_dim,
        };
        self.on_device(|dev| {
            dev.matmul_batch_strided(
                &spec,
                Strided {
                    data: &probs[..],
                    layout: BatchLayout::dense(m, s),
                },
                Strided {
                    data: qkv,
                    layout: values,
                },
                Strided {
                    data: out(dt, attn),
                    layout: rows,
                },
            )
        })?;
        Ok(())
    }
}

simd_fn! {
/// Causal softmax of `scale ·` each product's score rows (`queries.len()` rows of `s` scores per
/// product, row `t` of a product attending to keys `0..=queries[t]`) into probabilities in the
/// dtype; every position after the query is written `+0`.
///
/// The maxima and the sequential sums of [`ROW_LANES`] rows run side by side
/// ([`lanes::reduce_rows`]); the exponentials run over whole vectors (those past the query are
/// never used).
fn softmax_rows<H>(probs: &mut [u16], scores: &[f32], s: usize, queries: &[usize], scale: f32) {
    let m = queries.len();
    let mut e = vec![0f32; s * ROW_LANES];
    let mut columns = Vec::new();
    let mut lens = [0usize; ROW_LANES];
    let groups = scores.chunks(s * ROW_LANES).zip(probs.chunks_mut(s * ROW_LANES));
    // Row `i` of the batch is query `i mod m` of its product.
    let mut query = 0;
    for (srows, prows) in groups {
        let rows = srows.len() / s;
        for len in &mut lens[..rows] {
            *len = queries[query] + 1;
            query = if query + 1 == m { 0 } else { query + 1 };
        }
        if rows == ROW_LANES
            && lanes::softmax_rows16(srows, s, &lens, scale, H::round, &mut columns, prows)
        {
            continue;
        }
        let lens = &mut lens[..rows];
        let max = lanes::reduce_rows(srows, s, Some(lens), Reduction::MaxScaled(scale));
        let e = &mut e[..srows.len()];
        let rows = e.chunks_exact_mut(s).zip(srows.chunks_exact(s));
        for (((erow, srow), &max), &len) in rows.zip(&max).zip(lens.iter()) {
            // Up to the query rounded up to whole vectors (exponentials are most of the cost).
            let upto = len.next_multiple_of(16).min(s);
            for (ej, &x) in erow[..upto].iter_mut().zip(srow) {
                *ej = math::exp_f32(x * scale - max);
            }
        }
        let sums = lanes::reduce_rows(e, s, Some(lens), Reduction::Sum);
        let rows = prows.chunks_exact_mut(s).zip(e.chunks_exact(s)).zip(sums.iter().zip(lens.iter()));
        for ((prow, erow), (&sum, &len)) in rows {
            // Divisions only as far as the exponentials went; the rest of the row is +0.
            let upto = len.next_multiple_of(16).min(s);
            let (computed, masked) = prow.split_at_mut(upto);
            for (j, (pj, &ej)) in computed.iter_mut().zip(erow).enumerate() {
                let p = H::round(ej / sum);
                *pj = if j < len { p } else { 0 };
            }
            masked.fill(0);
        }
    }
}
}

/// A batch's inputs, prepared by [`Engine::artifacts`]' background thread: the input
/// embeddings and their RMSNorm with the first layer's input norm (the first step of the
/// forward, which depends on nothing the device computes).
#[derive(Default)]
struct BatchInputs {
    embeddings: Vec<u16>,
    normed: Vec<u16>,
}

/// What [`Engine::artifacts`]' background thread hands back.
struct Background {
    /// The previous batch's artifacts.
    artifacts: Vec<Artifact>,
    /// The next batch's inputs (or the spare buffers, untouched, after the last batch).
    inputs: BatchInputs,
    /// Wall time the thread worked.
    spent: Duration,
}

/// Steps 8–12 (normalise, pick, rotate, encode) for one batch's final hidden states, in nonce
/// order, the nonces side by side on `pool` if given; nonces whose hidden state is not finite
/// are dropped.
fn artifacts_of(
    round: &Round,
    batch: &[u64],
    hidden: &[Vec<f32>],
    pool: Option<&rayon::ThreadPool>,
) -> Vec<Artifact> {
    let one = |(&nonce, h): (&u64, &Vec<f32>)| artifact_from_hidden(round, nonce, h);
    match pool {
        Some(pool) => {
            use rayon::prelude::*;
            pool.install(|| batch.par_iter().zip(hidden).filter_map(one).collect())
        }
        None => batch.iter().zip(hidden).filter_map(one).collect(),
    }
}

/// Rule 1's input embeddings of `nonces` (`S×d` values each, rounded to the dtype) into `out`.
fn embed_into(out: &mut [u16], p: &RoundParams, nonces: &[u64], d: usize, dt: Dtype) {
    let s = p.seq_len;
    for (rows, &nonce) in out.chunks_exact_mut(s * d).zip(nonces) {
        let x = input_embeddings(&p.block_hash, &p.public_key, nonce, s, d, p.embedding_rng);
        dt.round_slice(&x, rows);
    }
}

/// The output buffer for the model dtype.
fn out(dt: Dtype, buf: &mut [u16]) -> MatOut<'_> {
    match dt {
        Dtype::Bf16 => MatOut::Bf16(buf),
        Dtype::F16 => MatOut::Fp16(buf),
    }
}

simd_fn! {
/// RMSNorm of each `width`-wide row of `x` into `out` (rule 2 of the module documentation).
///
/// Each row's `Σ x²` is a sequential `f32` chain by contract, so one row alone runs at the
/// latency of an addition per element. Groups of [`ROW_LANES`] rows run their chains side by
/// side instead ([`lanes::reduce_rows`]), each still in index order: the same bits, several times faster.
fn rmsnorm_into<H>(x: &[u16], width: usize, weight: &[f32], eps: f32, out: &mut [u16]) {
    let mut v = vec![0f32; width * ROW_LANES];
    for (rows, outs) in x.chunks(width * ROW_LANES).zip(out.chunks_mut(width * ROW_LANES)) {
        let v = &mut v[..rows.len()];
        for (vi, &b) in v.iter_mut().zip(rows) {
            *vi = H::decode(b);
        }
        normalize_group::<H>(v, width, weight, eps, outs);
    }
}
}

/// The second half of [`rmsnorm_into`] for one group of at most [`ROW_LANES`] decoded rows `v`:
/// the rows' sums of squares side by side, then `round(w · round(x · r))` into `outs`.
#[inline(always)]
fn normalize_group<H: Half>(v: &[f32], width: usize, weight: &[f32], eps: f32, outs: &mut [u16]) {
    let sums = lanes::reduce_rows(v, width, None, Reduction::SumSquares);
    for ((o, row), &sum) in outs
        .chunks_exact_mut(width)
        .zip(v.chunks_exact(width))
        .zip(&sums)
    {
        let mean = sum / width as f32;
        let r = 1.0 / (mean + eps).sqrt();
        for ((o, &xi), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = H::round(w * H::decode(H::round(xi * r)));
        }
    }
}

/// Picks the [`Half`] type of a [`Dtype`] for a generic body: `with_half!(dt, H => body)`.
macro_rules! with_half {
    ($dt:expr, $h:ident => $body:expr) => {
        match $dt {
            Dtype::Bf16 => {
                type $h = Bf16T;
                $body
            }
            Dtype::F16 => {
                type $h = F16T;
                $body
            }
        }
    };
}
use with_half;

/// A 16-bit activation format, as a type so hot loops are compiled once per format (and
/// vectorise) instead of matching on [`Dtype`] per element.
trait Half {
    fn decode(bits: u16) -> f32;
    fn round(x: f32) -> u16;
}

struct Bf16T;
impl Half for Bf16T {
    #[inline(always)]
    fn decode(bits: u16) -> f32 {
        f32::from_bits(u32::from(bits) << 16)
    }
    #[inline(always)]
    fn round(x: f32) -> u16 {
        // `float::f32_to_bf16_rne` without its early return, so loops vectorise (same bits;
        // a test compares the two on every class of input).
        let bits = x.to_bits();
        let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
        if x.is_nan() {
            crate::numerics::float::BF16_CANONICAL_NAN
        } else {
            rounded
        }
    }
}

struct F16T;
impl Half for F16T {
    #[inline(always)]
    fn decode(bits: u16) -> f32 {
        crate::numerics::float::fp16_to_f32(bits)
    }
    #[inline(always)]
    fn round(x: f32) -> u16 {
        crate::numerics::float::f32_to_fp16_rne(x)
    }
}

simd_fn! {
/// SwiGLU of fused gate|up rows (`2f` wide) into `f`-wide rows: `round(round(silu(g)) · u)`,
/// with `dec(round(silu(g)))` looked up in `silu` ([`SiluTable`]).
fn swiglu<H>(act: &mut [u16], gu: &[u16], f: usize, silu: &[f32; 1 << 16]) {
    let mut gate_silu = vec![0f32; f];
    for (a, row) in act.chunks_exact_mut(f).zip(gu.chunks_exact(2 * f)) {
        let (gate, up) = row.split_at(f);
        look_up(&mut gate_silu, gate, silu);
        for ((a, &sg), &u) in a.iter_mut().zip(&gate_silu).zip(up) {
            *a = H::round(sg * H::decode(u));
        }
    }
}
}

/// `out[i] = table[keys[i]]`. Kept out of line and compiled for the baseline CPU on purpose:
/// inside an AVX-512 function the compiler turns this loop into vector gathers, which are
/// slower than plain loads on CPUs with the Gather Data Sampling mitigation (measured 1.2 – 1.6
/// against 0.85 ns per element for the whole SwiGLU on the benchmark machine).
#[inline(never)]
fn look_up(out: &mut [f32], keys: &[u16], table: &[f32; 1 << 16]) {
    for (o, &k) in out.iter_mut().zip(keys) {
        *o = table[usize::from(k)];
    }
}

/// `dec(round(silu(dec(g))))` for every 16-bit pattern `g` of the model dtype (rule 8's gate
/// half). It depends on nothing but the gate's 16 bits, so a table built once per model with the
/// very same operations gives the same bits as computing it per element, and replaces an
/// exponential and a division per element (most of the MLP's host time) with one load from a
/// 256 KiB table that stays in cache.
struct SiluTable(Box<[f32; 1 << 16]>);

impl SiluTable {
    fn new(dt: Dtype) -> Self {
        with_half!(dt, H => Self::build::<H>())
    }

    fn build<H: Half>() -> Self {
        let values: Vec<f32> = (0..=u16::MAX)
            .map(|g| H::decode(H::round(math::silu(H::decode(g)))))
            .collect();
        SiluTable(
            values
                .into_boxed_slice()
                .try_into()
                .expect("one entry per 16-bit pattern"),
        )
    }
}

/// Rows per task when `rows` are split over `threads` threads: about [`TASKS_PER_THREAD`] tasks
/// per thread, so a thread that wakes up late still finds work to take (with one task per thread
/// the first thread awake often ran them all, which on the loaded benchmark machine made the
/// host's loops take half again as long), in whole groups of [`ROW_LANES`] rows where the rows
/// allow it.
fn rows_per_task(rows: usize, threads: usize) -> usize {
    let per = rows.div_ceil(threads * TASKS_PER_THREAD).max(1);
    if rows >= ROW_LANES * threads * TASKS_PER_THREAD {
        per.next_multiple_of(ROW_LANES)
    } else {
        per
    }
}

/// See [`rows_per_task`].
const TASKS_PER_THREAD: usize = 4;

/// Runs `work` on matching row ranges of `out` (`out_width` per row) and `input` (`in_width` per
/// row), split over up to `threads` threads. Rows are independent, so the split cannot change
/// any bit.
fn par_rows<O: Send, I: Sync>(
    host: &HostPool,
    out: &mut [O],
    out_width: usize,
    input: &[I],
    in_width: usize,
    work: impl Fn(&mut [O], &[I]) + Sync,
) {
    use rayon::prelude::*;
    let rows = out.len() / out_width;
    let threads = host.threads.min(rows).max(1);
    match &host.pool {
        Some(pool) if threads > 1 => {
            let per = rows_per_task(rows, threads);
            pool.install(|| {
                out.par_chunks_mut(per * out_width)
                    .zip(input.par_chunks(per * in_width))
                    .for_each(|(o, i)| work(o, i));
            });
        }
        _ => work(out, input),
    }
}

/// [`rmsnorm_into`] split over threads, into `out` (as long as `x`).
fn par_rmsnorm(
    threads: &HostPool,
    x: &[u16],
    width: usize,
    weight: &[f32],
    eps: f32,
    dt: Dtype,
    out: &mut [u16],
) {
    par_rows(threads, out, width, x, width, |o, x| {
        with_half!(dt, H => rmsnorm_into::<H>(x, width, weight, eps, o));
    });
}

/// Like [`par_rows`] for two outputs of the same row width (`a` updated in place, `b` written)
/// and one input of that width.
fn par_rows_pair<I: Sync>(
    host: &HostPool,
    a: &mut [u16],
    b: &mut [u16],
    width: usize,
    input: &[I],
    work: impl Fn(&mut [u16], &mut [u16], &[I]) + Sync,
) {
    use rayon::prelude::*;
    let rows = a.len() / width;
    let threads = host.threads.min(rows).max(1);
    match &host.pool {
        Some(pool) if threads > 1 => {
            let per = rows_per_task(rows, threads) * width;
            pool.install(|| {
                a.par_chunks_mut(per)
                    .zip(b.par_chunks_mut(per))
                    .zip(input.par_chunks(per))
                    .for_each(|((a, b), i)| work(a, b, i));
            });
        }
        _ => work(a, b, input),
    }
}

simd_fn! {
/// The attention block's end on each `width`-wide row: the residual add `h ← round(h + y)`,
/// then the MLP's RMSNorm of the new `h` into `out` (as [`rmsnorm_into`] would compute it from
/// `h`, without reading `h` back).
fn residual_rmsnorm_into<H>(
    h: &mut [u16],
    y: &[u16],
    width: usize,
    weight: &[f32],
    eps: f32,
    out: &mut [u16],
) {
    let mut v = vec![0f32; width * ROW_LANES];
    let groups = h
        .chunks_mut(width * ROW_LANES)
        .zip(y.chunks(width * ROW_LANES))
        .zip(out.chunks_mut(width * ROW_LANES));
    for ((rows, ys), outs) in groups {
        let v = &mut v[..rows.len()];
        for ((vi, a), &b) in v.iter_mut().zip(rows.iter_mut()).zip(ys) {
            *a = H::round(H::decode(*a) + H::decode(b));
            *vi = H::decode(*a);
        }
        normalize_group::<H>(v, width, weight, eps, outs);
    }
}
}

simd_fn! {
/// The MLP block's end on each `d`-wide row: the residual add `h ← round(h + y)`, the layer
/// reflection ([`math::reflect`]: `round(x − t·v)`, `t = 2·(v·x)` in `f32`), then the next
/// RMSNorm (the next layer's input norm, or the final norm) of the new `h` into `out`, all in one
/// pass over `h`. The dot products of [`ROW_LANES`] rows run side by side
/// ([`lanes::reduce_rows`]), each in index order.
fn residual_reflect_rmsnorm_into<H>(
    h: &mut [u16],
    y: &[u16],
    d: usize,
    v: &[f32],
    weight: &[f32],
    eps: f32,
    out: &mut [u16],
) {
    let v = &v[..d];
    let mut x = vec![0f32; d * ROW_LANES];
    let groups = h
        .chunks_mut(d * ROW_LANES)
        .zip(y.chunks(d * ROW_LANES))
        .zip(out.chunks_mut(d * ROW_LANES));
    for ((rows, ys), outs) in groups {
        let x = &mut x[..rows.len()];
        for ((xi, &a), &b) in x.iter_mut().zip(rows.iter()).zip(ys) {
            *xi = H::decode(H::round(H::decode(a) + H::decode(b)));
        }
        let dots = lanes::reduce_rows(x, d, None, Reduction::Dot(v));
        for ((row, xr), &dot) in rows.chunks_exact_mut(d).zip(x.chunks_exact_mut(d)).zip(&dots) {
            let t = 2.0 * dot;
            for ((b, xi), &vi) in row.iter_mut().zip(xr.iter_mut()).zip(v) {
                *b = H::round(*xi - t * vi);
                *xi = H::decode(*b);
            }
        }
        normalize_group::<H>(x, d, weight, eps, outs);
    }
}
}

/// Shapes of one nonce's fused q|k|v rows (`q_dim + 2·kv_dim` wide, `s` of them).
#[derive(Clone, Copy, Debug)]
struct AttentionDims {
    s: usize,
    hd: usize,
    heads: usize,
    kv_heads: usize,
    q_dim: usize,
    kv_dim: usize,
}

simd_fn! {
/// One nonce's score operands from its fused q|k|v rows `x`: the queried positions' query heads
/// into `qa` (`heads × m × hd`) and every key head transposed into `kt` (`heads × hd × s`,
/// repeated for the query heads sharing it), with Qwen3's per-head RMSNorm (when `norm` is given)
/// and RoPE on the way. (The values need no copy: the device reads them in place.)
///
/// Keys are transposed [`TILE`] positions at a time ([`tile::transpose_u16`]): each block's
/// rotated keys are collected position-major, then written `hd` rows of [`TILE`] at once.
/// Queries follow head by head, so each head's block is written front to back (interleaving
/// them with the keys, position by position, was about a tenth slower: every position then
/// stored into `heads` places a head block apart).
fn gather_nonce<H>(
    x: &[u16],
    qa: &mut [u16],
    kt: &mut [u16],
    dims: AttentionDims,
    queries: &[usize],
    rope: &RopeTable,
    norm: Option<&(Vec<f32>, Vec<f32>)>,
    eps: f32,
) {
    let AttentionDims { s, hd, heads, kv_heads, q_dim, kv_dim } = dims;
    let (width, group, m) = (q_dim + 2 * kv_dim, heads / kv_heads, queries.len());
    let mut normed = vec![0u16; hd];
    // One block's rotated keys: kv head, then position in the block, then element.
    let mut keys = vec![0u16; kv_heads * TILE * hd];
    for (block, rows) in x.chunks(TILE * width).enumerate() {
        let j0 = block * TILE;
        let n = rows.len() / width;
        for (r, row) in rows.chunks_exact(width).enumerate() {
            let j = j0 + r;
            for kvh in 0..kv_heads {
                let k = &row[q_dim + kvh * hd..][..hd];
                let key = &mut keys[(kvh * TILE + r) * hd..][..hd];
                norm_rope::<H>(k, j, norm.map(|n| &n.1[..]), eps, rope, &mut normed, key);
            }
        }
        for kvh in 0..kv_heads {
            let block_keys = &keys[kvh * TILE * hd..][..n * hd];
            let head_kt = &mut kt[kvh * group * hd * s..][..hd * s];
            tile::transpose_u16(block_keys, n, hd, &mut head_kt[j0..], s);
        }
    }
    // Queries head by head, each head's rows written in order.
    for head in 0..heads {
        let head_qa = &mut qa[head * m * hd..][..m * hd];
        for (out, &j) in head_qa.chunks_exact_mut(hd).zip(queries) {
            let q = &x[j * width + head * hd..][..hd];
            norm_rope::<H>(q, j, norm.map(|n| &n.0[..]), eps, rope, &mut normed, out);
        }
    }
    // Query heads sharing a key head (grouped-query attention) get copies of its block.
    for kvh in 0..kv_heads {
        let first = kvh * group;
        for head in first + 1..first + group {
            kt.copy_within(first * hd * s..(first + 1) * hd * s, head * hd * s);
        }
    }
}
}

/// One query or key head at position `pos`: RMSNorm with `norm` when given (Qwen3, into
/// `normed`), then RoPE, into `out`.
#[inline(always)]
fn norm_rope<H: Half>(
    head: &[u16],
    pos: usize,
    norm: Option<&[f32]>,
    eps: f32,
    rope: &RopeTable,
    normed: &mut [u16],
    out: &mut [u16],
) {
    let source = match norm {
        Some(w) => {
            rmsnorm_into::<H>(head, head.len(), w, eps, normed);
            &normed[..]
        }
        None => head,
    };
    rope.apply::<H>(pos, source, out);
}

/// RoPE `cos`/`sin` per position and frequency, already rounded to the dtype (as HF does).
struct RopeTable {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    fn new(inv_freq: &[f32], positions: usize, dt: Dtype) -> Self {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for pos in 0..positions {
            for &f in inv_freq {
                let angle = pos as f32 * f; // f32 product, as HF computes the frequencies
                let (c, s) = math::cos_sin_turns(f64::from(angle) * (0.5 / std::f64::consts::PI));
                cos.push(dt.decode(dt.round(c as f32)));
                sin.push(dt.decode(dt.round(s as f32)));
            }
        }
        RopeTable { half, cos, sin }
    }

    /// Rotates one head (rotate-half convention) from `x` into `out` (both dtype bits).
    ///
    /// The values are decoded in registers, [`ROPE_LANES`] at a time, rather than into a buffer
    /// first (loading a buffer just written in narrower pieces stalls: no store forwarding);
    /// fixed-size arrays make the compiler keep every step in vector registers. The operations
    /// on each element are those of rule 5, so the bits are the same.
    #[inline(always)]
    fn apply<H: Half>(&self, pos: usize, x: &[u16], out: &mut [u16]) {
        let h = self.half;
        let (cos, sin) = (
            &self.cos[pos * h..(pos + 1) * h],
            &self.sin[pos * h..(pos + 1) * h],
        );
        let (x1, x2) = x.split_at(h);
        let (o1, o2) = out.split_at_mut(h);
        let full = h / ROPE_LANES * ROPE_LANES;
        for i in (0..full).step_by(ROPE_LANES) {
            let lanes = ROPE_LANES;
            let xa: &[u16; ROPE_LANES] = x1[i..i + lanes].try_into().expect("lanes");
            let xb: &[u16; ROPE_LANES] = x2[i..i + lanes].try_into().expect("lanes");
            let c: &[f32; ROPE_LANES] = cos[i..i + lanes].try_into().expect("lanes");
            let s: &[f32; ROPE_LANES] = sin[i..i + lanes].try_into().expect("lanes");
            // Results in local arrays, stored after every input is read: no aliasing to check.
            let (mut first, mut second) = ([0u16; ROPE_LANES], [0u16; ROPE_LANES]);
            for k in 0..ROPE_LANES {
                let (a, b) = (H::decode(xa[k]), H::decode(xb[k]));
                first[k] = rope_first::<H>(a, b, c[k], s[k]);
                second[k] = rope_second::<H>(a, b, c[k], s[k]);
            }
            o1[i..i + lanes].copy_from_slice(&first);
            o2[i..i + lanes].copy_from_slice(&second);
        }
        for i in full..h {
            let (a, b) = (H::decode(x1[i]), H::decode(x2[i]));
            o1[i] = rope_first::<H>(a, b, cos[i], sin[i]);
            o2[i] = rope_second::<H>(a, b, cos[i], sin[i]);
        }
    }
}

/// Elements [`RopeTable::apply`] rotates at once (one AVX-512 vector of `f32`).
const ROPE_LANES: usize = 16;

/// Rule 5's first half: `round(round(a·c) − round(b·s))`.
#[inline(always)]
fn rope_first<H: Half>(a: f32, b: f32, c: f32, s: f32) -> u16 {
    let r = |v: f32| H::decode(H::round(v));
    H::round(r(a * c) - r(b * s))
}

/// Rule 5's second half: `round(round(b·c) + round(a·s))`.
#[inline(always)]
fn rope_second<H: Half>(a: f32, b: f32, c: f32, s: f32) -> u16 {
    let r = |v: f32| H::decode(H::round(v));
    H::round(r(b * c) + r(a * s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poc::artifact::RoundParams;
    use crate::poc::config::Preset;
    use crate::poc::cpu::{CpuDevice, ReferenceDevice};
    use crate::poc::model::SyntheticModel;

    fn tiny() -> (SyntheticModel, Round) {
        let model = SyntheticModel::new(Preset::find("tiny").unwrap(), "blk", 2);
        let round = Round::new(RoundParams::new("blk", "pk", 8), model.config()).unwrap();
        (model, round)
    }

    #[test]
    fn fast_cpu_equals_reference_device() {
        let (model, round) = tiny();
        let mut fast = Engine::load(&model, CpuDevice::new(2)).unwrap();
        let mut reference = Engine::load(&model, ReferenceDevice::new()).unwrap();
        let nonces = [0u64, 1];
        assert_eq!(
            fast.artifacts(&round, &nonces, 2).unwrap(),
            reference.artifacts(&round, &nonces, 2).unwrap()
        );
    }

    #[test]
    fn bits_do_not_depend_on_batch_size_threads_or_mac_path() {
        let (model, round) = tiny();
        let nonces: Vec<u64> = (10..17).collect();
        let mut base = Engine::load(&model, CpuDevice::new(1)).unwrap();
        let expect = base.artifacts(&round, &nonces, 7).unwrap();
        assert_eq!(expect.len(), 7);
        for (threads, batch) in [(1, 1), (2, 3), (3, 2)] {
            let mut e = Engine::load(&model, CpuDevice::new(threads)).unwrap();
            assert_eq!(e.artifacts(&round, &nonces, batch).unwrap(), expect);
        }
        let mut portable = Engine::load(&model, CpuDevice::portable(2)).unwrap();
        assert_eq!(portable.artifacts(&round, &nonces, 4).unwrap(), expect);
        // Host passes on a pool of their own, and on the device's pool (the batch loop then
        // runs on one of its workers), with the workspace sized ahead or not.
        let mut own = Engine::load(&model, CpuDevice::new(2)).unwrap();
        own.set_host_threads(2);
        assert_eq!(own.artifacts(&round, &nonces, 3).unwrap(), expect);
        let device = CpuDevice::new(2);
        let pool = device.pool();
        let mut shared = Engine::load(&model, device).unwrap();
        shared.set_host_pool(pool);
        shared.reserve(2, round.params.seq_len);
        assert_eq!(shared.artifacts(&round, &nonces, 5).unwrap(), expect);
        assert_eq!(shared.hidden_states(&round, &nonces[..2]).unwrap().len(), 2);
        let t = base.timing();
        assert!(t.nonces == 7 && t.device <= t.total);
    }

    #[test]
    fn branch_free_bf16_rounding_matches_the_contract() {
        let mut x = 0x0000_0001u32;
        while x < 0xFFFF_F000 {
            for v in [x, x | 0x7FFF, x | 0x8000, x | 0xFFFF, x ^ 0x8000] {
                let f = f32::from_bits(v);
                assert_eq!(
                    Bf16T::round(f),
                    crate::numerics::float::f32_to_bf16_rne(f),
                    "{v:#x}"
                );
            }
            x = x.wrapping_mul(3).wrapping_add(0x1_0001);
        }
        for f in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -f32::MAX,
            0.0,
            -0.0,
        ] {
            assert_eq!(Bf16T::round(f), crate::numerics::float::f32_to_bf16_rne(f));
        }
    }

    /// The table-driven SwiGLU equals rule 8 computed per element, for every gate pattern
    /// (NaNs, infinities, subnormals included) and a spread of up values, in both dtypes.
    #[test]
    fn swiglu_table_equals_rule_8() {
        fn check<H: Half>(dt: Dtype) {
            let table = SiluTable::new(dt);
            let ups = [
                0x0000u16, 0x8000, 0x3c00, 0x3f80, 0xc2c8, 0x7c00, 0x7f80, 0x0001, 0x7fff,
            ];
            let f = 1 << 16;
            let mut gu = vec![0u16; 2 * f];
            let mut act = vec![0u16; f];
            for &u in &ups {
                for g in 0..f {
                    gu[g] = g as u16;
                    gu[f + g] = u;
                }
                swiglu::<H>(&mut act, &gu, f, &table.0);
                for (g, &got) in act.iter().enumerate() {
                    let sg = H::decode(H::round(math::silu(H::decode(g as u16))));
                    let want = H::round(sg * H::decode(u));
                    assert_eq!(got, want, "{dt:?} gate {g:#06x} up {u:#06x}");
                }
            }
        }
        check::<Bf16T>(Dtype::Bf16);
        check::<F16T>(Dtype::F16);
    }

    /// Rule 4 for one row alone, the maximum and the sum one term after the other, as the
    /// forward computed it before rows ran side by side.
    fn softmax_one_row<H: Half>(scores: &[f32], len: usize, scale: f32) -> Vec<u16> {
        let mut m = f32::NEG_INFINITY;
        for &t in &scores[..len] {
            let y = t * scale;
            if y > m {
                m = y;
            }
        }
        let e: Vec<f32> = scores[..len]
            .iter()
            .map(|&t| math::exp_f32(t * scale - m))
            .collect();
        let mut sum = 0f32;
        for &x in &e {
            sum += x;
        }
        (0..scores.len())
            .map(|j| if j < len { H::round(e[j] / sum) } else { 0 })
            .collect()
    }

    /// The batched softmax (side-by-side maxima and sums, masked tails; on AVX-512 whole groups
    /// of 16 rows as columns) equals rule 4 row by row, bit for bit, with NaN, infinities and
    /// zeros of both signs among the scores: for a row length that is no multiple of any lane
    /// count (partial groups and partial column blocks), and for the forward's causal shapes
    /// (every position queried, or only the last).
    #[test]
    fn softmax_rows_equal_rule_4_row_by_row() {
        fn check<H: Half>() {
            check_shape::<H>(37, &[0, 3, 15, 16, 17, 31, 36], 5);
            check_shape::<H>(16, &(0..16).collect::<Vec<_>>(), 3);
            check_shape::<H>(32, &(0..32).collect::<Vec<_>>(), 2);
            check_shape::<H>(32, &[31], 40);
        }
        fn check_shape<H: Half>(s: usize, queries: &[usize], count: usize) {
            let m = queries.len();
            let mut state = 0x9E37_79B9u32;
            let mut scores: Vec<f32> = (0..count * m * s)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((state >> 8) as f32 / 16_777_216.0 - 0.5) * 60.0
                })
                .collect();
            scores[s + 2] = f32::NAN;
            scores[2 * s + 1] = f32::INFINITY;
            scores[3 * s] = f32::NEG_INFINITY;
            for (j, x) in scores[4 * s..5 * s].iter_mut().enumerate() {
                *x = if j % 3 == 0 { -0.0 } else { 0.0 };
            }
            scores[5 * s..6 * s].fill(f32::NAN);
            scores[6 * s + 15] = 1e30; // scaled, the others underflow to zero
            let scale = 0.17;
            let mut probs = vec![0xFFFFu16; scores.len()];
            softmax_rows::<H>(&mut probs, &scores, s, queries, scale);
            for (r, (got, row)) in probs
                .chunks_exact(s)
                .zip(scores.chunks_exact(s))
                .enumerate()
            {
                let want = softmax_one_row::<H>(row, queries[r % m] + 1, scale);
                assert_eq!(got, &want[..], "row {r}");
            }
        }
        check::<Bf16T>();
        check::<F16T>();
    }

    #[test]
    fn grouped_rmsnorm_equals_one_row_at_a_time() {
        // 13 rows: one full group of ROW_LANES and a partial one; values spanning magnitudes.
        let width = 24;
        let mut state = 0x1234_5678u32;
        let x: Vec<u16> = (0..13 * width)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let exponent = 100 + (state >> 27) as u16; // 2^-27 .. 2^4
                ((state >> 16) as u16 & 0x8000) | (exponent << 7) | ((state >> 8) as u16 & 0x7F)
            })
            .collect();
        let weight: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 / 16.0).collect();
        let mut grouped = vec![0u16; x.len()];
        rmsnorm_into::<Bf16T>(&x, width, &weight, 1e-6, &mut grouped);
        for (row, got) in x.chunks_exact(width).zip(grouped.chunks_exact(width)) {
            let v: Vec<f32> = row.iter().map(|&b| Bf16T::decode(b)).collect();
            let r = 1.0 / (math::sum_squares(&v) / width as f32 + 1e-6).sqrt();
            let want: Vec<u16> = v
                .iter()
                .zip(&weight)
                .map(|(&xi, &w)| Bf16T::round(w * Bf16T::decode(Bf16T::round(xi * r))))
                .collect();
            assert_eq!(got, &want[..]);
        }
    }

    /// A pinned artifact: any change to seeds, weights, rounding points or encoding shows here
    /// (and must then be deliberate, with the conformance generator version bumped).
    #[test]
    fn artifact_bits_are_pinned() {
        let model = SyntheticModel::new(Preset::find("tiny").unwrap(), "abc", 2);
        let round = Round::new(RoundParams::new("abc", "pk", 16), model.config()).unwrap();
        let mut e = Engine::load(&model, CpuDevice::new(2)).unwrap();
        let a = e.artifacts(&round, &[0, 3], 2).unwrap();
        assert_eq!(a[0].vector_b64(), "XbDPNkO2+quluGgyqis+MDguCq9wtCE2");
        assert_eq!(a[1].vector_b64(), "3jQYpGu2ObGxs/g3KrLuMRIy/LVMsrg1");
    }

    #[test]
    fn different_nonces_and_keys_give_different_artifacts() {
        let (model, round) = tiny();
        let mut e = Engine::load(&model, CpuDevice::new(2)).unwrap();
        let a = e.artifacts(&round, &[1, 2], 2).unwrap();
        assert_ne!(a[0].vector, a[1].vector);
        let other = Round::new(RoundParams::new("blk", "pk2", 8), model.config()).unwrap();
        assert_ne!(e.artifacts(&other, &[1], 1).unwrap()[0].vector, a[0].vector);
    }
}
