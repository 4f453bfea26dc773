"""Hugging Face architectures built from their configuration: ``hf:MODEL_TYPE[,key=value...]``, nothing downloaded.

``hf:gpt2`` is ``AutoModel.from_config(AutoConfig.for_model("gpt2"))``: the architecture at its
configuration's defaults (GPT-2 small, BERT base, Llama 7B…), randomly initialised, weights on the
``meta`` device like every other spec; ``hf:gpt2,n_layer=2,n_embd=64`` overrides configuration fields
(values read as JSON: numbers, ``true``/``false``, quoted strings, else the text). ``transformers`` is
imported only here, and only for ``hf:`` specs: it stays optional.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from torch import nn

from torchscan.errors import TorchscanError
from torchscan.loader.weights import meta_weights

__all__ = ["PREFIX", "build", "default_inputs", "model_types"]

PREFIX = "hf:"

DEFAULT_SEQUENCE = 128
"""Tokens in a text model's default input."""

_AUDIO_SAMPLES = 16_000
"""Samples of a raw-audio model's default input: one second at 16 kHz."""

_WHISPER_FRAMES = 3000
"""Frames of a log-mel model's default input (30 s at 100 frames per second, what Whisper's encoder takes)."""


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise TorchscanError("`hf:` models need transformers: install it with `pip install transformers`") from error
    return transformers


def model_types() -> list[str]:
    """Every model type transformers knows (``gpt2``, ``bert``, ``llama``…), sorted."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    _transformers()
    return sorted(CONFIG_MAPPING_NAMES)


def expand(pattern: str) -> list[str]:
    """The ``hf:`` specs a model-type pattern (``hf:*``, ``hf:bert*``) matches, sorted."""
    name = pattern.removeprefix(PREFIX)
    return [PREFIX + model_type for model_type in fnmatch.filter(model_types(), name)]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _config(spec: str) -> Any:
    """The configuration ``spec`` names, its overrides applied."""
    model_type, *overrides = spec.removeprefix(PREFIX).split(",")
    options: dict[str, Any] = {}
    for item in overrides:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise TorchscanError(f"'{spec}': expected hf:MODEL_TYPE,key=value,... (got '{item}')")
        options[key.strip()] = _value(value.strip())
    auto = _transformers().AutoConfig
    try:
        return auto.for_model(model_type.strip(), **options)
    except ValueError as error:
        raise TorchscanError(f"'{spec}': {' '.join(str(error).split())[:300]}") from error


def _model_class(config: Any) -> Any:
    mapping = _transformers().AutoModel._model_mapping
    try:
        return mapping[type(config)]
    except KeyError as error:
        raise TorchscanError(f"hf:{config.model_type} has no AutoModel architecture") from error


def build(spec: str, meta: bool = True) -> nn.Module:
    """``AutoModel.from_config`` of ``spec``'s configuration, in eval mode (meta weights when ``meta``)."""
    config = _config(spec)
    model_class = _model_class(config)
    if not meta:
        return model_class(config).eval()
    with meta_weights():
        return model_class(config).eval()


def default_inputs(spec: str) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    """``(keyword, shape without the batch dim, dtype)`` of each input the model is called with.

    By the architecture's ``main_input_name``: ``input_ids`` ``(128,)`` int64 (and ``decoder_input_ids``
    alike for an encoder-decoder), ``pixel_values`` ``(channels, image_size, image_size)``,
    ``input_values`` one second of 16 kHz audio, ``input_features`` ``(num_mel_bins, 3000)``.
    """
    config = _config(spec)
    name = getattr(_model_class(config), "main_input_name", "input_ids")
    if name == "pixel_values":
        size = getattr(config, "image_size", 224)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return ((name, (getattr(config, "num_channels", 3), height, width), "float32"),)
    if name == "input_values":
        return ((name, (_AUDIO_SAMPLES,), "float32"),)
    if name == "input_features":
        inputs: tuple[tuple[str, tuple[int, ...], str], ...] = (
            (name, (getattr(config, "num_mel_bins", 80), _WHISPER_FRAMES), "float32"),
        )
    else:
        inputs = ((name, (DEFAULT_SEQUENCE,), "int64"),)
    if getattr(config, "is_encoder_decoder", False):
        inputs += (("decoder_input_ids", (DEFAULT_SEQUENCE,), "int64"),)
    return inputs
