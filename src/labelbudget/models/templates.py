"""Prompt templates: one home for how an example becomes model input, shared by scoring,
fine-tuning and evaluation so that all three see the same text."""

from __future__ import annotations

from abc import ABC, abstractmethod

from labelbudget.data.schema import Example


def user_message(example: Example) -> str:
    """The instruction, followed by its context when there is one (Dolly-style)."""
    if example.context:
        return f"{example.prompt}\n\n{example.context}"
    return example.prompt


class PromptTemplate(ABC):
    """How an example becomes the token ids the model answers."""

    @abstractmethod
    def encode_prompt(self, tokenizer, example: Example) -> list[int]:
        """Token ids of the prompt, ending where the model's answer starts."""


class ChatTemplate(PromptTemplate):
    """The tokenizer's own chat template (instruct models such as SmolLM2-Instruct)."""

    def __init__(self, system_prompt: str | None = None):
        self.system_prompt = system_prompt

    def encode_prompt(self, tokenizer, example: Example) -> list[int]:
        """The example as the user turn (after `system_prompt`, where set), ending in the
        template's generation prompt."""
        messages = [{"role": "user", "content": user_message(example)}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]


class PlainTemplate(PromptTemplate):
    """A format string for base models (LLaMA-2 7B in the paper): BOS, then the filled format."""

    def __init__(self, format: str = "### Instruction:\n{instruction}\n\n### Response:\n"):
        if "{instruction}" not in format:
            raise ValueError("a plain template's format needs an {instruction} placeholder")
        self.format = format

    def encode_prompt(self, tokenizer, example: Example) -> list[int]:
        """BOS (where the tokenizer has one), then `format` filled with the example."""
        text = self.format.format(instruction=user_message(example))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + ids
