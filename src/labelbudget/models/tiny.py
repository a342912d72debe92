"""A tiny random-init Llama with a byte-level tokenizer built locally: fast tests, no downloads."""

from __future__ import annotations

import torch

from labelbudget.models.loading import LoadedModel, ready_for_inference
from labelbudget.models.templates import PlainTemplate, PromptTemplate

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")


def byte_level_tokenizer():
    """Every byte is one token (no merges): deterministic and needs no training data."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *alphabet])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def build_tiny_llama(
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    template: PromptTemplate | None = None,
) -> LoadedModel:
    """A seeded random-init Llama with the byte-level tokenizer, ready for inference; the plain
    template unless `template` is given."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return ready_for_inference(model, tokenizer, template or PlainTemplate())
