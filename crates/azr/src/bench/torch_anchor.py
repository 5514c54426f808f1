# The PyTorch anchor of `azr bench train`: one policy-gradient update (forward, backward, grad
# clip, AdamW) on the same model and batch shape as ours, in plain PyTorch on the CPU, f32.
#
# The decoder is our own code (no transformers): Llama / SmolLM2 (and the Qwen2 QKV biases and
# Qwen3 q/k norms when the weights have them): RMSNorm, half-split RoPE with the config's theta,
# grouped-query attention, SwiGLU, tied or separate LM head. The weights come from the Hugging
# Face directory azr wrote from the same model.
#
# The batch: ROWS rows of TOKENS random token ids (fixed seed): one prompt token and TOKENS - 1
# response tokens, advantages +1/-1 alternating. Loss: the PPO clipped surrogate with
# ratio exp(logp - logp.detach()) (= 1, a fresh rollout), token mean over the batch, from a
# full log_softmax over the vocabulary. Then clip_grad_norm_(1.0) and AdamW (lr 1e-6, betas
# (0.9, 0.999), eps 1e-8, no weight decay). One warm-up update, then the median of --steps.
#
# --check JSON: {"prompt": [...], "response": [...], "logprobs": [...]}, azr's teacher-forced
# log-probs of a short row; the script compares its own and fails when they differ by 1e-3 or
# more (a wrong anchor is an error, not a number).
#
# Prints one JSON line: tokens_per_s, secs, peak_rss_mib, torch, check_max_abs_diff, ...

import argparse
import json
import os
import sys
import time
import warnings

# The PyPI wheel warns on import when NumPy is missing; nothing here needs NumPy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


class Decoder(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.n_heads
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg.get("rope_theta", 10000.0)
        self.tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in weights
        # Parameter names keep the Hugging Face names, with '/' for '.' (module names cannot
        # hold dots).
        self.w = torch.nn.ParameterDict(
            {k.replace(".", "/"): torch.nn.Parameter(v.float().contiguous()) for k, v in weights.items()}
        )

    def p(self, name):
        return self.w[name.replace(".", "/")] if name.replace(".", "/") in self.w else None

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, t):
        half = self.head_dim // 2
        inv = 1.0 / (self.theta ** (torch.arange(0, half, dtype=torch.float64) * 2.0 / self.head_dim))
        ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
        return ang.cos().float(), ang.sin().float()

    @staticmethod
    def rotate(x, cos, sin):
        # x: (B, heads, T, head_dim); the half-split (NeoX / Hugging Face) layout.
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    def lin(self, x, name):
        return F.linear(x, self.p(name + ".weight"), self.p(name + ".bias"))

    def hidden(self, ids):
        b, t = ids.shape
        cos, sin = self.rope(t)
        x = F.embedding(ids, self.p("model.embed_tokens.weight"))
        for l in range(self.n_layers):
            pre = f"model.layers.{l}."
            h = self.rms(x, self.p(pre + "input_layernorm.weight"))
            q = self.lin(h, pre + "self_attn.q_proj").view(b, t, self.n_heads, self.head_dim)
            k = self.lin(h, pre + "self_attn.k_proj").view(b, t, self.n_kv, self.head_dim)
            v = self.lin(h, pre + "self_attn.v_proj").view(b, t, self.n_kv, self.head_dim)
            qn, kn = self.p(pre + "self_attn.q_norm.weight"), self.p(pre + "self_attn.k_norm.weight")
            if qn is not None:
                q = self.rms(q, qn)
            if kn is not None:
                k = self.rms(k, kn)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
            if self.n_kv != self.n_heads:
                rep = self.n_heads // self.n_kv
                k = k.repeat_interleave(rep, dim=1)
                v = v.repeat_interleave(rep, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a = a.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
            x = x + self.lin(a, pre + "self_attn.o_proj")
            h = self.rms(x, self.p(pre + "post_attention_layernorm.weight"))
            g = self.lin(h, pre + "mlp.gate_proj")
            u = self.lin(h, pre + "mlp.up_proj")
            x = x + self.lin(F.silu(g) * u, pre + "mlp.down_proj")
        return self.rms(x, self.p("model.norm.weight"))

    def head_weight(self):
        return self.p("model.embed_tokens.weight") if self.tied else self.p("lm_head.weight")

    def response_logprobs(self, ids, n_prompt):
        # Log-probs of ids[:, n_prompt:] given everything before them, full log_softmax.
        h = self.hidden(ids)[:, n_prompt - 1 : -1]
        logits = F.linear(h, self.head_weight())
        lp = torch.log_softmax(logits, dim=-1)
        return lp.gather(-1, ids[:, n_prompt:].unsqueeze(-1)).squeeze(-1)


def peak_rss_mib():
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--tokens", type=int, required=True)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--optimizer", choices=["fused", "foreach"], default="fused")
    ap.add_argument("--check", help="JSON text (not a file): prompt, response, logprobs")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = Decoder(cfg, load_file(os.path.join(args.model_dir, "model.safetensors")))

    out = {
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    if args.check:
        chk = json.loads(args.check)
        ids = torch.tensor([chk["prompt"] + chk["response"]], dtype=torch.long)
        with torch.no_grad():
            ours = model.response_logprobs(ids, len(chk["prompt"]))[0]
        theirs = torch.tensor(chk["logprobs"], dtype=torch.float32)
        diff = (ours - theirs).abs().max().item()
        out["check_tokens"] = len(chk["response"])
        out["check_max_abs_diff"] = diff
        if not diff < 1e-3:
            print(
                f"the PyTorch model disagrees with azr: max |logprob diff| {diff:.3g} "
                f"over {len(chk['response'])} tokens (limit 1e-3)",
                file=sys.stderr,
            )
            sys.exit(2)

    vocab = cfg["vocab_size"]
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocab, (args.rows, args.tokens), generator=gen)
    adv = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(args.rows)])[:, None]
    params = list(model.parameters())
    kind = {"fused": {"fused": True}, "foreach": {"foreach": True}}[args.optimizer]
    opt = torch.optim.AdamW(params, lr=1e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kind)
    clip_low, clip_high = 0.2, 0.28

    def step():
        t0 = time.perf_counter()
        lp = model.response_logprobs(ids, 1)
        ratio = torch.exp(lp - lp.detach())
        loss = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip_low, 1 + clip_high)).mean()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, loss.item(), norm.item()

    step()
    runs = [step() for _ in range(max(1, args.steps))]
    # The median as azr's bench takes it (the upper one of an even count).
    secs = sorted(r[0] for r in runs)[int((len(runs) - 1) * 0.5 + 0.5)]
    out.update(
        {
            "tokens_per_s": args.rows * args.tokens / secs,
            "secs": secs,
            "all_secs": [r[0] for r in runs],
            "loss": runs[-1][1],
            "grad_norm": runs[-1][2],
            "optimizer": args.optimizer,
            "peak_rss_mib": peak_rss_mib(),
        }
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
