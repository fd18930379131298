"""One decode step of a Llama-family model (Llama, Qwen2, Qwen3) over its transformers KV cache,
without transformers' module machinery.

On CPU the tiny model's decode step is per-call overhead, not arithmetic: transformers' forward
goes through its modules (hooks, keyword plumbing, output classes), builds a 4D mask and the rotary
tables every step and makes 289 top-level operator calls (tiny checkpoint, 2 rows); on a GPU every
call is a kernel launch. This step computes the same with the model's own weight tensors and
cache in 209 calls: the rotary angles and the mask once per step (not per layer), q and k rotated
together, no casts where the dtype is float32.
`bench/decode_step.py` (one decode step of the shipped tiny checkpoint, ~700-token contexts, one
thread, 2-core EPYC): 1.80 -> 0.87 ms at 1 row (2.1x), 3.51 -> 2.20 ms at 3 rows (1.6x), 5.44 ->
4.22 ms at 8 rows (1.3x; attention over the cache then dominates).

It reproduces the transformers forward exactly for what it accepts (tests compare logits over
decode steps with padding and dropped rows, to 1e-5, for Qwen2, Qwen3 and Llama); for anything
else (`lean_decoder` returns None: another architecture, sliding-window layers, a rope whose
frequencies depend on the length, an attention backend other than sdpa/eager, activations other
than SiLU, quantised or parallelised linears) the backend calls the model as before."""

from __future__ import annotations

SUPPORTED = frozenset({"llama", "qwen2", "qwen3"})
STATIC_ROPE = frozenset({"default", "linear", "llama3", "yarn"})  # frequencies fixed at load time


def lean_decoder(model) -> LeanDecoder | None:
    """A `LeanDecoder` for `model`, or None where this step would not reproduce its forward."""
    import torch

    cfg = getattr(model, "config", None)
    if (
        cfg is None
        or getattr(cfg, "model_type", None) not in SUPPORTED
        or getattr(cfg, "hidden_act", None) != "silu"
    ):
        return None
    if getattr(cfg, "use_sliding_window", False) or any(
        t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])
    ):
        return None
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") not in STATIC_ROPE:
        return None
    if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "rotary_emb") or not hasattr(model, "lm_head"):
        return None
    linears = [model.lm_head]
    for layer in inner.layers:
        a, m = layer.self_attn, layer.mlp
        linears += [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj]
    if any(
        type(x) is not torch.nn.Linear  # quantised, LoRA-wrapped, FSDP2-sharded
        or type(x.weight) not in (torch.Tensor, torch.nn.Parameter)  # a DTensor (tensor parallel)
        or tuple(x.weight.shape) != (x.out_features, x.in_features)  # ZeRO-3 partitioned, not gathered
        for x in linears
    ):
        return None
    if any("FullyShardedDataParallel" in type(m).__name__ for m in model.modules()):
        return None  # FSDP1 units gather their weights in their own forward, which this step skips
    if type(inner.embed_tokens) is not torch.nn.Embedding:
        return None
    return LeanDecoder(model)


class LeanDecoder:
    """`step(tokens, attention_mask, position_ids, cache)`: the logits of a block of q new tokens per
    row (q = 1 for plain decoding; more when drafted tokens are verified).

    tokens: (b, q) ids; attention_mask: (b, n), the cache's positions then the q new ones, 0 where a
    position is padding or a hole, or None (nothing masked); position_ids: (b, q); cache: the
    model's `Cache` (updated in place). Returns (b, q, vocab)."""

    def __init__(self, model):
        cfg, inner = model.config, model.model
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        # plain tensors, not modules: a module call costs more than the tiny model's matmul (the
        # optimizer updates these same tensors in place; a backend lives for one rollout)
        self.embed = inner.embed_tokens.weight
        self.norm = norm_of(inner.norm)
        self.lm_head = linear_of(model.lm_head)
        self.inv_freq = inner.rotary_emb.inv_freq
        self.rope_scale = float(inner.rotary_emb.attention_scaling)
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            q_norm, k_norm = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
            self.layers.append(
                (
                    norm_of(layer.input_layernorm),
                    [linear_of(x) for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj)],
                    None if q_norm is None else (norm_of(q_norm), norm_of(k_norm)),
                    float(a.scaling),
                    norm_of(layer.post_attention_layernorm),
                    [linear_of(x) for x in (m.gate_proj, m.up_proj, m.down_proj)],
                )
            )

    @staticmethod
    def _rms(x, norm):
        """transformers' RMSNorm: in float32, cast back, then the weight."""
        import torch

        weight, eps = norm
        dt = x.dtype
        h = x if dt == torch.float32 else x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return weight * (h if dt == torch.float32 else h.to(dt))

    def step(self, tokens, attention_mask, position_ids, cache):
        import torch
        import torch.nn.functional as F

        H, KV, D = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)  # (b, q, hidden)
        b, q, dt = x.shape[0], x.shape[1], x.dtype
        freqs = (
            position_ids[..., None].float() * self.inv_freq.float()
        )  # (b, q, D/2), float32 as transformers
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        if self.rope_scale != 1.0:
            cos, sin = cos * self.rope_scale, sin * self.rope_scale
        if dt != torch.float32:
            cos, sin = cos.to(dt), sin.to(dt)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]  # (b, q, 1, D): every head of every layer
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (b, 1, 1, n)
            if q > 1:  # new token i also sees new tokens 0..i only
                n = attention_mask.size(1)
                cols = torch.arange(n, device=mask.device)
                rows = torch.arange(n - q, n, device=mask.device)
                mask = mask & (cols[None, :] <= rows[:, None])  # (b, 1, q, n)
        elif q > 1:
            raise ValueError("a block of several tokens needs an attention mask")
        half = D // 2
        for i, (norm1, (wq, wk, wv, wo), qk_norms, scale, norm2, (gate, up, down)) in enumerate(self.layers):
            h = self._rms(x, norm1)
            qs = F.linear(h, *wq).view(b, q, H, D)
            ks = F.linear(h, *wk).view(b, q, KV, D)
            vs = F.linear(h, *wv).view(b, q, KV, D).transpose(1, 2)
            if qk_norms is not None:  # Qwen3: RMSNorm over each head before the rotation
                qs, ks = self._rms(qs, qk_norms[0]), self._rms(ks, qk_norms[1])
            qk = torch.cat((qs, ks), 2)  # (b, q, H + KV, D): both rotated in one pass
            qk = (qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), -1) * sin).transpose(1, 2)
            keys, values = cache.layers[i].update(qk[:, H:], vs)
            out = F.scaled_dot_product_attention(
                qk[:, :H], keys, values, attn_mask=mask, scale=scale, enable_gqa=H != KV
            )  # (b, H, q, D)
            x = x + F.linear(out.transpose(1, 2).reshape(b, q, H * D), *wo)
            h = self._rms(x, norm2)
            x = x + F.linear(F.silu(F.linear(h, *gate)) * F.linear(h, *up), *down)
        return F.linear(self._rms(x, self.norm), *self.lm_head)


def norm_of(norm) -> tuple:
    return norm.weight, float(norm.variance_epsilon)


def linear_of(linear) -> tuple:
    return linear.weight, linear.bias
