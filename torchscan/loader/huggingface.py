"""Hugging Face architectures built from their configuration: ``hf:MODEL_TYPE[,key=value...]``, nothing downloaded.

``hf:gpt2`` is ``AutoModel.from_config(AutoConfig.for_model("gpt2"))``: the architecture at its
configuration's defaults (GPT-2 small, BERT base, Llama 7B…), randomly initialised, weights on the
``meta`` device like every other spec; ``hf:gpt2,n_layer=2,n_embd=64`` overrides configuration fields
(values read as JSON: numbers, ``true``/``false``, quoted strings, objects for a sub-configuration such as
``vision_config={"image_size":64,"patch_size":8}``, else the text). ``transformers`` is
imported only here, and only for ``hf:`` specs: it stays optional.
"""

from __future__ import annotations

import fnmatch
import inspect
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
    """The ``hf:`` specs a model-type pattern (``hf:*``, ``hf:bert*``) matches, sorted: the model types
    ``AutoModel`` builds (``hf:*``: 631 of the 831 types transformers 5.25 knows; the others are configurations of
    a tokenizer, a processor or a sub-model, which ``AutoModel`` refuses)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = pattern.removeprefix(PREFIX)
    matched = fnmatch.filter(model_types(), name)
    return [PREFIX + model_type for model_type in matched if model_type in MODEL_MAPPING_NAMES]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _items(text: str) -> list[str]:
    """``text`` split at its commas outside brackets, braces and quotes: a JSON value may hold commas
    (``vision_config={"image_size":64,"patch_size":8}``)."""
    items, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[index - 1] != "\\" else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return items


def _config(spec: str) -> Any:
    """The configuration ``spec`` names, its overrides applied."""
    model_type, *overrides = _items(spec.removeprefix(PREFIX))
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

    By the architecture's ``main_input_name``: ``input_ids`` ``(128,)`` int64, fewer where the text configuration
    has fewer positions (CLIP's 77), and ``decoder_input_ids`` alike for an encoder-decoder; ``pixel_values``
    ``(channels, image_size, image_size)``; ``input_values`` one second of 16 kHz audio; ``input_features``
    ``(num_mel_bins, 3000)``. A model of two modalities (its configuration holds a ``vision_config`` or an
    ``image_config``, or a ``text_config``, and its ``forward`` takes the other modality's input: CLIP, SigLIP,
    BLIP-2, FLAVA…) gets that input too, the image at its vision configuration's size.
    """
    config = _config(spec)
    model_class = _model_class(config)
    name = getattr(model_class, "main_input_name", "input_ids")
    if name == "pixel_values":
        inputs: tuple[tuple[str, tuple[int, ...], str], ...] = (_image(config),)
    elif name == "input_values":
        inputs = ((name, (_AUDIO_SAMPLES,), "float32"),)
    elif name == "input_features":
        inputs = ((name, (getattr(config, "num_mel_bins", 80), _WHISPER_FRAMES), "float32"),)
    else:
        inputs = ((name, (_tokens(config),), "int64"),)
    parameters = inspect.signature(model_class.forward).parameters
    vision = getattr(config, "vision_config", None) or getattr(config, "image_config", None)
    if name != "pixel_values" and "pixel_values" in parameters and vision is not None:
        inputs += (_image(vision),)
    if name != "input_ids" and "input_ids" in parameters and getattr(config, "text_config", None) is not None:
        inputs += (("input_ids", (_tokens(config),), "int64"),)
    if getattr(config, "is_encoder_decoder", False):
        inputs += (("decoder_input_ids", (_tokens(config),), "int64"),)
    return inputs


def _image(config: Any) -> tuple[str, tuple[int, ...], str]:
    """``pixel_values`` of one image at ``config``'s ``image_size`` (224 where it has none) and ``num_channels``."""
    size = getattr(config, "image_size", 224)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return ("pixel_values", (getattr(config, "num_channels", 3), height, width), "float32")


def _tokens(config: Any) -> int:
    """Token ids of a text input: :data:`DEFAULT_SEQUENCE`, or the text configuration's positions where fewer."""
    text = getattr(config, "text_config", None) or config
    positions = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
    return min(DEFAULT_SEQUENCE, positions) if isinstance(positions, int) and positions > 0 else DEFAULT_SEQUENCE
