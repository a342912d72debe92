"""Batched greedy generation, with the measures the selectors need when asked for.

A single prefill over the (left-padded) prompts gives both the prompt embedding (penultimate
layer) and the first next-token distribution; decoding then reuses the KV cache. Per-token
measures are accumulated on the fly in float32, so no (steps x vocab) logits are kept. An
evaluation asks for the tokens alone: no hidden states, no entropies or margins.
"""

from __future__ import annotations

from typing import Callable

import torch


class StopStrings:
    """Marks the rows whose generated text contains a stop string (BBH's "\n\nQ:"), so a batch
    stops as soon as every row has its answer instead of running to max_new_tokens. Only the
    last `window` tokens are decoded at each step: a stop string is a few tokens long."""

    def __init__(self, tokenizer, strings: tuple[str, ...] | list[str], window: int = 8):
        self.tokenizer, self.strings, self.window = tokenizer, tuple(strings), window

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the rows whose last `window` tokens decode to text holding a stop string."""
        tail = tokens[:, -self.window :].tolist()
        return torch.tensor(
            [any(s in self.tokenizer.decode(row) for s in self.strings) for row in tail],
            device=tokens.device,
        )


def truncate_at_stop(text: str, strings: tuple[str, ...] | list[str]) -> str:
    """The text before the first stop string."""
    cut = min((i for i in (text.find(s) for s in strings) if i >= 0), default=len(text))
    return text[:cut]


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Prompt embedding from (B, L, d) hidden states: mean over real tokens, or the last token
    (with left padding the last position is always the last real token)."""
    if pooling == "last":
        return hidden[:, -1, :].float()
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float()
    raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")


def top_two(logits: torch.Tensor) -> tuple[torch.Tensor, torch.return_types.topk]:
    """One step's (B, V) log-probabilities and their two largest: the greedy token is the first,
    with or without measures, so both paths generate the same tokens."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return log_probs, log_probs.topk(2, dim=-1)


def token_measures(
    logits: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one step's (B, V) logits: the greedy token, its log-probability, the full-vocabulary
    entropy, and the margin p_top1 - p_top2."""
    log_probs, top = top_two(logits)
    entropy = torch.special.entr(log_probs.exp()).sum(-1)
    margin = top.values[:, 0].exp() - top.values[:, 1].exp()
    return top.indices[:, 0], top.values[:, 0], entropy, margin


@torch.no_grad()
def greedy_score(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_ids: list[int],
    pad_token_id: int,
    pooling: str = "mean",
    stop: Callable[[torch.Tensor], torch.Tensor] | None = None,
    measures: bool = True,
) -> dict[str, torch.Tensor]:
    """Greedy-generate up to `max_new_tokens` for a left-padded batch and score it.
    `stop(tokens so far) -> rows done` ends rows early besides EOS (e.g. `StopStrings`).
    `measures=False`: the tokens and their count alone (the same tokens: greedy picks the
    argmax of the same logits), without the hidden states and per-token measures.

    A sequence's measures cover its tokens up to and including its end-of-sequence token. The
    KV cache goes back under the name the model returned it with: `cache` since transformers 5.x
    renamed it (the old `past_key_values` warns there), `past_key_values` before.
    Returns per-row tensors: seq_logprob, mean_logprob, mean_prob, mean_entropy, mean_margin, min_margin,
    n_tokens, hit_max_tokens, embeddings (B, d), tokens (B, steps; pad after the end).
    """
    batch = input_ids.shape[0]
    device = input_ids.device
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=True,
        output_hidden_states=measures,
        logits_to_keep=1,  # only the last position's logits: the prompt's own are never used
    )
    embeddings = pool_hidden(out.hidden_states[-2], attention_mask, pooling) if measures else None
    cache_keyword = "cache" if "cache" in out.keys() else "past_key_values"
    past, logits = out[cache_keyword], out.logits[:, -1, :]
    del out

    eos = torch.tensor(eos_token_ids, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    sum_logprob = torch.zeros(batch, dtype=torch.float64, device=device)
    sum_prob = torch.zeros(batch, dtype=torch.float64, device=device)
    sum_entropy = torch.zeros(batch, dtype=torch.float64, device=device)
    sum_margin = torch.zeros(batch, dtype=torch.float64, device=device)
    min_margin = torch.full((batch,), float("inf"), device=device)
    n_tokens = torch.zeros(batch, dtype=torch.long, device=device)
    tokens = []
    next_position = position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        active = ~finished
        if measures:
            token, logprob, entropy, margin = token_measures(logits)
            sum_logprob += torch.where(active, logprob, 0).double()
            sum_prob += torch.where(active, logprob.exp(), 0).double()
            sum_entropy += torch.where(active, entropy, 0).double()
            sum_margin += torch.where(active, margin, 0).double()
            min_margin = torch.where(active, torch.minimum(min_margin, margin), min_margin)
        else:
            token = top_two(logits)[1].indices[:, 0]
        n_tokens += active.long()
        tokens.append(torch.where(active, token, pad_token_id))
        finished |= torch.isin(token, eos)
        if stop is not None:
            finished |= stop(torch.stack(tokens, dim=1))
        if finished.all() or step == max_new_tokens - 1:
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        out = model(
            input_ids=token.unsqueeze(1),
            attention_mask=attention_mask,
            position_ids=next_position,
            use_cache=True,
            **{cache_keyword: past},
        )
        past, logits = out[cache_keyword], out.logits[:, -1, :]
        next_position = next_position + 1

    tokens = torch.stack(tokens, dim=1)
    if not measures:
        return {"n_tokens": n_tokens, "hit_max_tokens": ~finished, "tokens": tokens}
    count = n_tokens.double()
    return {
        "seq_logprob": sum_logprob,
        "mean_logprob": sum_logprob / count,
        "mean_prob": sum_prob / count,
        "mean_entropy": sum_entropy / count,
        "mean_margin": sum_margin / count,
        "min_margin": min_margin.double(),
        "n_tokens": n_tokens,
        "hit_max_tokens": ~finished,
        "embeddings": embeddings,
        "tokens": tokens,
    }
