"""A pure-torch LLaDA: OLMo-style bidirectional transformer with the published module names.

The module tree is `LLaDAModelLM.model.transformer.{wte, blocks.{i}.*, ln_f, ff_out}` so that
the published safetensors load as they are and peft finds `q_proj`/`k_proj`/`v_proj` where the
EvoToken adapter expects them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .config import LLaDAConfig


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Norms, RoPE and decoding probabilities run in float32 for serving dtypes, and in
    float64 when the model itself is float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(compute_dtype(dtype))
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rotary_tables(position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos/sin of shape (B, 1, L, head_dim) for neox-style (two halves) rotary embeddings."""
    cdtype = compute_dtype(dtype)
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=cdtype) / head_dim))
    freqs = position_ids.to(cdtype)[..., None] * inv_freq  # (B, L, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, L, hd)
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    dtype = x.dtype
    h = x.to(cos.dtype)
    h1, h2 = h.chunk(2, dim=-1)
    rotated = torch.cat([-h2, h1], dim=-1)
    return (h * cos + rotated * sin).to(dtype)


class LLaDABlock(nn.Module):
    """Pre-norm attention + SwiGLU block with LLaDA's parameter names and no biases."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, hd = config.d_model, config.d_model // config.n_heads
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, hd
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, config.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, config.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, config.n_kv_heads * hd, bias=False)
        self.attn_out = nn.Linear(config.n_heads * hd, d, bias=False)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_proj = nn.Linear(d, config.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(d, config.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(config.mlp_hidden_size, d, bias=False)

    def forward(self, x, cos, sin, attn_mask, kv=None, cols=None, kv_out=None):
        """x: (B, Q, D). Without `kv`, Q is the whole sequence. With `kv` = (K, V) of shape
        (B, n_kv, Lk, hd), x holds only the positions being recomputed: their fresh keys and
        values are written into K/V at `cols` (B, Q) and the queries attend over all Lk keys
        (the approximate prefix/dual cache). `kv_out` collects this layer's (k, v)."""
        B, Q, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, Q, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, Q, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, Q, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv_out is not None:
            kv_out.append((k, v))
        if kv is not None:
            index = cols[:, None, :, None].expand(-1, self.n_kv_heads, -1, self.head_dim)
            k = kv[0].scatter_(2, index, k)
            v = kv[1].scatter_(2, index, v)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, enable_gqa=self.n_kv_heads != self.n_heads
        )
        x = x + self.attn_out(att.transpose(1, 2).reshape(B, Q, -1))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDATransformer(nn.Module):
    """Holds `.transformer` so parameter names read `model.transformer.*` from the top."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.embedding_size, config.d_model),
                blocks=nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
                ln_f=RMSNorm(config.d_model, config.rms_norm_eps),
                ff_out=nn.Linear(config.d_model, config.embedding_size, bias=False),
            )
        )


def soft_embed(weight: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Embedding mixture sum_j w_j * E[t_j] for candidates (..., K) -> (..., D).

    Accumulates candidate by candidate in a fixed order, so that candidates with weight 0
    (padding when rows of a batch use different k_soft) leave the result bit-identical.
    """
    acc_dtype = torch.promote_types(weight.dtype, weights.dtype)
    acc = weights[..., 0, None].to(acc_dtype) * weight[ids[..., 0]]
    for j in range(1, ids.shape[-1]):
        acc = acc + weights[..., j, None].to(acc_dtype) * weight[ids[..., j]]
    return acc.to(weight.dtype)


class LLaDAModelLM(PreTrainedModel, GenerationMixin):
    """LLaDA as a transformers model: loads the published checkpoint and takes peft adapters."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDABlock"]
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        config.validate_supported()
        self.model = LLaDATransformer(config)
        self.post_init()

    def _init_weights(self, module):
        std = getattr(self.config, "init_std", 0.02)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)

    # --- the pieces the decoding engine drives directly -------------------------------------
    @property
    def transformer(self) -> nn.ModuleDict:
        return self.model.transformer

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.transformer.wte = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.transformer.ff_out

    def embed(self, input_ids: torch.Tensor | None = None, soft_ids=None, soft_weights=None) -> torch.Tensor:
        """Token ids (B, L), or a soft input: candidates (B, L, K) with weights (B, L, K)."""
        if soft_ids is not None:
            return soft_embed(self.transformer.wte.weight, soft_ids, soft_weights)
        return self.transformer.wte(input_ids)

    def hidden(self, inputs_embeds: torch.Tensor, attention_mask=None, position_ids=None,
               kv=None, cols=None, kv_out=None) -> torch.Tensor:
        """Final hidden states before `ln_f`: (B, Q, D).

        attention_mask: (B, Lk), 1 = a real key; pass None when nothing is padded, so SDPA
        can use its fastest kernel. `kv`/`cols`/`kv_out` are the cache hooks of
        `LLaDABlock.forward`, `kv` being one (K, V) pair per layer.
        """
        B, L, _ = inputs_embeds.shape
        if position_ids is None:
            position_ids = torch.arange(L, device=inputs_embeds.device).expand(B, L)
        cfg = self.config
        cos, sin = rotary_tables(position_ids, cfg.d_model // cfg.n_heads, cfg.rope_theta, inputs_embeds.dtype)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]
        x = inputs_embeds
        for i, block in enumerate(self.transformer.blocks):
            x = block(x, cos, sin, mask, kv[i] if kv is not None else None, cols, kv_out)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Output head on (already selected) hidden states, cut to the real vocabulary."""
        out = self.transformer.ff_out(self.transformer.ln_f(hidden))
        return out[..., : self.config.vocab_size]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        soft_ids: torch.Tensor | None = None,
        soft_weights: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **unused,
    ) -> CausalLMOutput:
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, soft_ids, soft_weights)
        logits = self.logits(self.hidden(inputs_embeds, attention_mask, position_ids))
        loss = None
        if labels is not None:  # token-level CE on positions whose label is not -100
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids, **kwargs}
