#!/usr/bin/env python3
"""An independent NumPy implementation of the network's PoC artifact, for cross-checking.

Written from shared/network-poc.md (seeds, RNG, embeddings, reflections, pick, rotation, encoding)
and Hugging Face Llama/Qwen2/Qwen3 semantics (RMSNorm, RoPE, grouped-query causal attention,
SwiGLU), NOT from the Rust code. The forward runs in float32 with float64 transcendentals; only
the model's own weights and input embeddings are rounded to the model dtype (as the protocol
says), every intermediate stays float32. The golden model rounds activations to bf16 the way GPU
inference engines do, so the two agree within the network's 0.02 threshold, not bit for bit.

Usage:
  poc_numpy.py artifacts --model synthetic:small|DIR --block-hash H --public-key P \
      --nonces A B [--seq-len S] [--k-dim K]          -> JSON {"artifacts": [...]} on stdout
  poc_numpy.py write-checkpoint --arch llama|qwen2|qwen3 --out DIR [--seed N] [--dtype F32|F16]
"""

import argparse
import base64
import hashlib
import json
import os
import sys

import numpy as np

PRESETS = {
    # name: (d, layers, heads, ffn, seq_len)
    "tiny": (64, 2, 4, 192, 16),
    "small": (256, 4, 8, 768, 32),
    "launch": (2048, 16, 16, 7168, 16),
}

M32 = np.uint64(0xFFFFFFFF)


# --- seeds and RNG (network-poc.md steps 1-4) -------------------------------------------------

def seed32(s):
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:4], "big")


def seed32x8(s):
    d = hashlib.sha256(s.encode("utf-8")).digest()
    return [int.from_bytes(d[4 * i:4 * i + 4], "big") for i in range(8)]


def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & M32


def mix(keys, seed):
    """MurmurHash3 x86_32 of one 4-byte block, without the length xor; vectorised over keys."""
    k = np.asarray(keys, dtype=np.uint64) & M32
    k = (k * np.uint64(0xCC9E2D51)) & M32
    k = _rotl(k, 15)
    k = (k * np.uint64(0x1B873593)) & M32
    h = np.uint64(seed) ^ k
    h = _rotl(h, 13)
    h = (h * np.uint64(5) + np.uint64(0xE6546B64)) & M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M32
    h ^= h >> np.uint64(16)
    return h


def uniform(seed, n):
    # float32(u32) rounds to nearest even; dividing by 2^32 is exact.
    return mix(np.arange(n, dtype=np.uint64), seed).astype(np.float32) / np.float32(2.0**32)


def normal(seed, n):
    m = (n + 1) // 2
    u = uniform(seed, 2 * m)
    u1 = np.maximum(u[:m], np.float32(1e-10)).astype(np.float64)
    u2 = u[m:].astype(np.float64)
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])
    return z[:n].astype(np.float32)


def to_bf16(x):
    """Round float32 to the nearest bfloat16 (ties to even), returned as float32."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def to_dtype(x, dtype):
    return to_bf16(x) if dtype == "bf16" else np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


# --- models ------------------------------------------------------------------------------------

def synthetic_model(preset, block_hash):
    d, layers, heads, ffn, _ = PRESETS[preset]
    cfg = dict(model_type="llama", d=d, layers=layers, heads=heads, kv_heads=heads, head_dim=d // heads,
               ffn=ffn, eps=1e-5, theta=10000.0, dtype="bf16")

    def w(name, shape):
        n = int(np.prod(shape))
        return to_bf16(np.float32(0.02) * normal(seed32(f"{block_hash}_{name}"), n)).reshape(shape)

    t = {}
    q, kv = cfg["heads"] * cfg["head_dim"], cfg["kv_heads"] * cfg["head_dim"]
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = np.ones(d, np.float32)
        t[p + "post_attention_layernorm.weight"] = np.ones(d, np.float32)
        for name, shape in [("self_attn.q_proj", (q, d)), ("self_attn.k_proj", (kv, d)),
                            ("self_attn.v_proj", (kv, d)), ("self_attn.o_proj", (d, q)),
                            ("mlp.gate_proj", (ffn, d)), ("mlp.up_proj", (ffn, d)),
                            ("mlp.down_proj", (d, ffn))]:
            t[p + name + ".weight"] = w(p + name + ".weight", shape)
    t["model.norm.weight"] = np.ones(d, np.float32)
    return cfg, t


def checkpoint_model(path):
    from safetensors.numpy import load_file
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    heads = c["num_attention_heads"]
    cfg = dict(model_type=c["model_type"], d=c["hidden_size"], layers=c["num_hidden_layers"], heads=heads,
               kv_heads=c.get("num_key_value_heads") or heads,
               head_dim=c.get("head_dim") or c["hidden_size"] // heads, ffn=c["intermediate_size"],
               eps=c.get("rms_norm_eps", 1e-6), theta=c.get("rope_theta", 10000.0),
               dtype="f16" if c.get("torch_dtype") == "float16" else "bf16")
    t = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            t.update({k: to_dtype(v.astype(np.float32), cfg["dtype"]) for k, v in load_file(os.path.join(path, name)).items()})
    return cfg, t


# --- the forward (Hugging Face semantics, float32) ----------------------------------------------

def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(var + np.float32(eps))) * w


def rope(x, pos_cos, pos_sin):
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * pos_cos + rot * pos_sin


def linear(x, t, name):
    y = x @ t[name + ".weight"].T
    if name + ".bias" in t:
        y = y + t[name + ".bias"]
    return y


def hidden_states(cfg, t, block_hash, public_key, nonces, seq_len):
    d, hd, H, KV = cfg["d"], cfg["head_dim"], cfg["heads"], cfg["kv_heads"]
    n = len(nonces)
    x = np.stack([normal(seed32(f"{block_hash}_{public_key}_nonce{nc}"), seq_len * d).reshape(seq_len, d)
                  for nc in nonces])
    h = to_dtype(x, cfg["dtype"])
    inv_freq = 1.0 / (cfg["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    ang = np.arange(seq_len, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)
    mask = np.triu(np.full((seq_len, seq_len), -np.inf, np.float32), k=1)
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        a = rms_norm(h, t[p + "input_layernorm.weight"], cfg["eps"])
        q = linear(a, t, p + "self_attn.q_proj").reshape(n, seq_len, H, hd)
        k = linear(a, t, p + "self_attn.k_proj").reshape(n, seq_len, KV, hd)
        v = linear(a, t, p + "self_attn.v_proj").reshape(n, seq_len, KV, hd)
        if p + "self_attn.q_norm.weight" in t:
            q = rms_norm(q, t[p + "self_attn.q_norm.weight"], cfg["eps"])
            k = rms_norm(k, t[p + "self_attn.k_norm.weight"], cfg["eps"])
        q = rope(q.transpose(0, 2, 1, 3), cos, sin)
        k = rope(k.transpose(0, 2, 1, 3), cos, sin)
        v = v.transpose(0, 2, 1, 3)
        k = np.repeat(k, H // KV, axis=1)
        v = np.repeat(v, H // KV, axis=1)
        s = (q @ k.transpose(0, 1, 3, 2)) / np.float32(np.sqrt(hd)) + mask
        s = s - s.max(axis=-1, keepdims=True)
        pr = np.exp(s)
        pr = pr / pr.sum(axis=-1, keepdims=True)
        o = (pr @ v).transpose(0, 2, 1, 3).reshape(n, seq_len, H * hd)
        h = h + linear(o, t, p + "self_attn.o_proj")
        a = rms_norm(h, t[p + "post_attention_layernorm.weight"], cfg["eps"])
        g = linear(a, t, p + "mlp.gate_proj")
        u = linear(a, t, p + "mlp.up_proj")
        silu = g / (1.0 + np.exp(-g.astype(np.float64))).astype(np.float32)
        h = h + linear(silu * u, t, p + "mlp.down_proj")
        # network-poc.md step 6: reflect the hidden state after layer i.
        vr = normal(seed32(f"{block_hash}_layer_{i}_householder"), d)
        vr = vr / np.linalg.norm(vr)
        h = h - 2.0 * (h @ vr)[..., None] * vr
        h = h.astype(np.float32)
    return rms_norm(h[:, -1, :], t["model.norm.weight"], cfg["eps"]).astype(np.float32)


# --- steps 8-11 -----------------------------------------------------------------------------------

def artifact(hidden, block_hash, public_key, nonce, k):
    d = hidden.shape[0]
    h = hidden / (np.linalg.norm(hidden) + 1e-8)
    scores = mix(np.arange(d), seed32(f"{block_hash}_{public_key}_nonce_{nonce}_pick_{k}"))
    order = np.lexsort((np.arange(d), scores))  # smallest score first, ties by lower index
    idx = np.sort(order[:k])  # ascending index order (the documented default)
    y = h[idx].astype(np.float64)
    for j in range(k - 1):
        w = normal(seed32(f"{block_hash}_{public_key}_nonce_{nonce}_haar_hh_{k}_{j}"), k).astype(np.float64)
        w = w / np.linalg.norm(w)
        y = y - 2.0 * np.dot(w, y) * w
    y = y / (np.linalg.norm(y) + 1e-8)
    return base64.b64encode(y.astype(np.float16).astype("<f2").tobytes()).decode("ascii")


def cmd_artifacts(args):
    if args.model.startswith("synthetic:"):
        preset = args.model.split(":", 1)[1]
        cfg, t = synthetic_model(preset, args.block_hash)
        seq_len = args.seq_len or PRESETS[preset][4]
    else:
        cfg, t = checkpoint_model(args.model)
        seq_len = args.seq_len or 16
    nonces = list(range(args.nonces[0], args.nonces[1]))
    out = []
    for start in range(0, len(nonces), 200):
        batch = nonces[start:start + 200]
        hs = hidden_states(cfg, t, args.block_hash, args.public_key, batch, seq_len)
        for nonce, h in zip(batch, hs):
            if np.all(np.isfinite(h)):
                out.append({"nonce": nonce, "vector_b64": artifact(h, args.block_hash, args.public_key, nonce, args.k_dim)})
    json.dump({"artifacts": out, "encoding": {"dtype": "f16", "k_dim": args.k_dim, "endian": "le"}}, sys.stdout)


def cmd_write_checkpoint(args):
    """A small random model in the Hugging Face layout, written by the safetensors package."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(args.seed)
    d, layers, heads, kv_heads, head_dim, ffn = 64, 2, 4, 2, 16, 160
    if args.arch == "qwen3":
        head_dim = 32  # differs from d / heads, as Qwen3 allows
    cfg = {"architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                              "qwen3": "Qwen3ForCausalLM"}[args.arch]],
           "model_type": args.arch, "hidden_size": d, "num_hidden_layers": layers,
           "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim,
           "intermediate_size": ffn, "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "vocab_size": 32,
           "torch_dtype": "float16" if args.dtype == "F16" else "bfloat16"}
    dt = "f16" if args.dtype == "F16" else "bf16"
    store = np.float16 if args.dtype == "F16" else np.float32

    def rnd(*shape, scale=0.05):
        return to_dtype(scale * rng.standard_normal(shape).astype(np.float32), dt).astype(store)

    t = {"model.embed_tokens.weight": rnd(32, d), "model.norm.weight": (1 + rnd(d, scale=0.1)).astype(store)}
    q, kv = heads * head_dim, kv_heads * head_dim
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1 + rnd(d, scale=0.1)).astype(store)
        t[p + "post_attention_layernorm.weight"] = (1 + rnd(d, scale=0.1)).astype(store)
        for name, shape in [("self_attn.q_proj", (q, d)), ("self_attn.k_proj", (kv, d)),
                            ("self_attn.v_proj", (kv, d)), ("self_attn.o_proj", (d, q)),
                            ("mlp.gate_proj", (ffn, d)), ("mlp.up_proj", (ffn, d)), ("mlp.down_proj", (d, ffn))]:
            t[p + name + ".weight"] = rnd(*shape)
        if args.arch == "qwen2":
            for name, n in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)]:
                t[p + f"self_attn.{name}.bias"] = rnd(n, scale=0.2)
        if args.arch == "qwen3":
            t[p + "self_attn.q_norm.weight"] = (1 + rnd(head_dim, scale=0.1)).astype(store)
            t[p + "self_attn.k_norm.weight"] = (1 + rnd(head_dim, scale=0.1)).astype(store)
    t = {k: to_dtype(v.astype(np.float32), dt).astype(store) for k, v in t.items()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    # Two shards, as large checkpoints come.
    names = sorted(t)
    half = len(names) // 2
    save_file({k: t[k] for k in names[:half]}, os.path.join(args.out, "model-00001-of-00002.safetensors"))
    save_file({k: t[k] for k in names[half:]}, os.path.join(args.out, "model-00002-of-00002.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("artifacts")
    a.add_argument("--model", required=True)
    a.add_argument("--block-hash", required=True)
    a.add_argument("--public-key", required=True)
    a.add_argument("--nonces", type=int, nargs=2, required=True, metavar=("A", "B"))
    a.add_argument("--seq-len", type=int)
    a.add_argument("--k-dim", type=int, default=12)
    w = sub.add_parser("write-checkpoint")
    w.add_argument("--arch", choices=["llama", "qwen2", "qwen3"], required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--dtype", choices=["F32", "F16"], default="F32")
    args = ap.parse_args()
    {"artifacts": cmd_artifacts, "write-checkpoint": cmd_write_checkpoint}[args.cmd](args)


if __name__ == "__main__":
    main()
