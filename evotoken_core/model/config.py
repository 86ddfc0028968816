"""The LLaDA checkpoint configuration, read from `config.json` without remote code."""

from __future__ import annotations

from transformers import PretrainedConfig


class LLaDAConfig(PretrainedConfig):
    """Config of an OLMo-style bidirectional diffusion LM in the published LLaDA format.

    The key names are those of `GSAI-ML/LLaDA-8B-Instruct`'s `config.json`; keys this
    implementation does not use (OLMo's many switches) are kept as plain attributes, and the
    ones that would change the architecture away from what is implemented are rejected in
    `validate_supported`.
    """

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_heads: int = 32,
        n_kv_heads: int | None = None,
        n_layers: int = 32,
        mlp_hidden_size: int | None = 12288,
        mlp_ratio: int = 4,
        vocab_size: int = 126464,
        embedding_size: int | None = 126464,
        mask_token_id: int = 126336,
        eos_token_id: int = 126081,
        pad_token_id: int | None = 126081,
        rope_theta: float = 500000.0,
        rms_norm_eps: float = 1e-5,
        max_sequence_length: int = 4096,
        weight_tying: bool = False,
        include_bias: bool = False,
        block_type: str = "llama",
        **kwargs,
    ):
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads if n_kv_heads is not None else n_heads
        self.n_layers = n_layers
        self.mlp_ratio = mlp_ratio
        self.mlp_hidden_size = mlp_hidden_size if mlp_hidden_size is not None else mlp_ratio * d_model
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size if embedding_size is not None else vocab_size
        self.mask_token_id = mask_token_id
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.max_sequence_length = max_sequence_length
        self.weight_tying = weight_tying
        self.include_bias = include_bias
        self.block_type = block_type
        kwargs.setdefault("tie_word_embeddings", weight_tying)
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    # transformers' generic helpers look for these names
    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    def validate_supported(self) -> None:
        """Refuse checkpoints whose architecture differs from the implemented LLaDA block."""
        problems = []
        if self.block_type != "llama":
            problems.append(f"block_type={self.block_type!r} (only 'llama' is implemented)")
        if self.include_bias:
            problems.append("include_bias=true (LLaDA has no biases)")
        if self.weight_tying:
            problems.append("weight_tying=true (LLaDA's output head is untied)")
        if self.d_model % self.n_heads:
            problems.append(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            problems.append(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        if not 0 <= self.mask_token_id < self.embedding_size:
            problems.append(f"mask_token_id {self.mask_token_id} is outside the embedding table")
        if self.vocab_size > self.embedding_size:
            problems.append("vocab_size is larger than embedding_size")
        if problems:
            raise ValueError("unsupported LLaDA config: " + "; ".join(problems))
