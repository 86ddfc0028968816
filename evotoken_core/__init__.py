"""EvoToken-DLM in pure torch: the LLaDA-format model, soft-token decoding, the batching
engine and continuous trajectory supervision. No web-stack imports live here."""

__version__ = "0.1.0"
