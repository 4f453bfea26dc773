"""Static memory figures of Hugging Face architectures against real CPU passes (live tensor bytes).

    python benchmarks/memory_hf.py                 # every architecture below, one table
    python benchmarks/memory_hf.py llama bloom     # some of them

Each architecture is built from a small configuration (width 64, 2 layers, 4 heads, vocabulary 1,000, 64 tokens,
batch 2; random weights, nothing downloaded), with dropouts, layer drop, router jitter and SpecAugment off so that
a real pass is deterministic, in train mode. Per architecture: the static inference peak against one no-grad
forward and the SGD training estimate against one real step (``tests/measure/accuracy_cases.py``'s ``figures``);
``error = static / measured − 1``. Each runs in its own process (one failure does not stop the table).
Encoders and encoder-decoders get an attention mask with the second sequence padded; decoders ``input_ids`` only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.measure.accuracy_cases import Case, figures, hf_model, text_inputs  # noqa: E402

VOCAB, TOKENS = 1000, 64


def _text(decoder: int = 0, mask: bool = True) -> Callable[[], dict[str, Any]]:
    return text_inputs(TOKENS, decoder, mask)


def _pixels() -> dict[str, Any]:
    return {"pixel_values": torch.randn(2, 3, 32, 32)}


_BERT = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
_LLAMA = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 128,
    "use_cache": False,
    "attention_dropout": 0.0,
}
_DECODER = _text(mask=False)
_WIDTH = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}

CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "gpt2",
            hf_model(
                "GPT2Model",
                "GPT2Config",
                vocab_size=VOCAB,
                n_embd=64,
                n_layer=2,
                n_head=4,
                n_positions=128,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                use_cache=False,
            ),
            kwargs=_DECODER,
        ),
        Case("llama", hf_model("LlamaModel", "LlamaConfig", **_LLAMA), kwargs=_DECODER),
        Case("mistral", hf_model("MistralModel", "MistralConfig", **_LLAMA), kwargs=_DECODER),
        Case("qwen2", hf_model("Qwen2Model", "Qwen2Config", **_LLAMA), kwargs=_DECODER),
        Case("qwen3", hf_model("Qwen3Model", "Qwen3Config", head_dim=16, **_LLAMA), kwargs=_DECODER),
        Case(
            "phi3",
            hf_model("Phi3Model", "Phi3Config", resid_pdrop=0.0, embd_pdrop=0.0, pad_token_id=0, **_LLAMA),
            kwargs=_DECODER,
        ),
        Case("gemma", hf_model("GemmaModel", "GemmaConfig", head_dim=16, **_LLAMA), kwargs=_DECODER),
        Case(
            "gemma2", hf_model("Gemma2Model", "Gemma2Config", head_dim=16, sliding_window=32, **_LLAMA), kwargs=_DECODER
        ),
        Case(
            "mixtral",
            hf_model(
                "MixtralModel",
                "MixtralConfig",
                num_local_experts=4,
                num_experts_per_tok=2,
                router_jitter_noise=0.0,
                **_LLAMA,
            ),
            kwargs=_DECODER,
        ),
        Case(
            "gpt_neox",
            hf_model(
                "GPTNeoXModel",
                "GPTNeoXConfig",
                vocab_size=VOCAB,
                intermediate_size=256,
                max_position_embeddings=128,
                hidden_dropout=0.0,
                attention_dropout=0.0,
                use_cache=False,
                **_WIDTH,
            ),
            kwargs=_DECODER,
        ),
        Case(
            "falcon",
            hf_model(
                "FalconModel",
                "FalconConfig",
                vocab_size=VOCAB,
                hidden_dropout=0.0,
                attention_dropout=0.0,
                use_cache=False,
                **_WIDTH,
            ),
            kwargs=_DECODER,
        ),
        Case(
            "bloom",
            hf_model(
                "BloomModel",
                "BloomConfig",
                vocab_size=VOCAB,
                hidden_size=64,
                n_layer=2,
                n_head=4,
                hidden_dropout=0.0,
                attention_dropout=0.0,
                use_cache=False,
            ),
            kwargs=_DECODER,
        ),
        Case(
            "opt",
            hf_model(
                "OPTModel",
                "OPTConfig",
                vocab_size=VOCAB,
                ffn_dim=256,
                word_embed_proj_dim=64,
                max_position_embeddings=128,
                dropout=0.0,
                attention_dropout=0.0,
                layerdrop=0.0,
                use_cache=False,
                **_WIDTH,
            ),
            kwargs=_DECODER,
        ),
        Case(
            "t5",
            hf_model(
                "T5Model",
                "T5Config",
                vocab_size=VOCAB,
                d_model=64,
                d_ff=256,
                num_layers=2,
                num_heads=4,
                d_kv=16,
                use_cache=False,
                dropout_rate=0.0,
            ),
            kwargs=_text(decoder=16),
        ),
        Case(
            "bart",
            hf_model(
                "BartModel",
                "BartConfig",
                vocab_size=VOCAB,
                d_model=64,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=4,
                decoder_attention_heads=4,
                encoder_ffn_dim=256,
                decoder_ffn_dim=256,
                max_position_embeddings=128,
                dropout=0.0,
                attention_dropout=0.0,
                activation_dropout=0.0,
                encoder_layerdrop=0.0,
                decoder_layerdrop=0.0,
                use_cache=False,
            ),
            kwargs=_text(decoder=16),
        ),
        Case(
            "roberta", hf_model("RobertaModel", "RobertaConfig", max_position_embeddings=130, **_BERT), kwargs=_text()
        ),
        Case(
            "distilbert",
            hf_model(
                "DistilBertModel",
                "DistilBertConfig",
                vocab_size=VOCAB,
                dim=64,
                n_layers=2,
                n_heads=4,
                hidden_dim=256,
                dropout=0.0,
                attention_dropout=0.0,
                max_position_embeddings=128,
            ),
            kwargs=_text(),
        ),
        Case("albert", hf_model("AlbertModel", "AlbertConfig", embedding_size=32, **_BERT), kwargs=_text()),
        Case("electra", hf_model("ElectraModel", "ElectraConfig", embedding_size=32, **_BERT), kwargs=_text()),
        Case(
            "deberta-v2",
            hf_model("DebertaV2Model", "DebertaV2Config", max_position_embeddings=128, **_BERT),
            kwargs=_text(),
        ),
        Case(
            "vit",
            hf_model(
                "ViTModel",
                "ViTConfig",
                image_size=32,
                patch_size=8,
                **{key: value for key, value in _BERT.items() if key != "vocab_size"},
            ),
            kwargs=_pixels,
        ),
        Case(
            "clip-vision",
            hf_model(
                "CLIPVisionModel",
                "CLIPVisionConfig",
                image_size=32,
                patch_size=8,
                intermediate_size=256,
                attention_dropout=0.0,
                **_WIDTH,
            ),
            kwargs=_pixels,
        ),
        Case(
            "whisper-encoder",
            hf_model(
                "WhisperForAudioClassification",
                "WhisperConfig",
                d_model=64,
                encoder_layers=2,
                encoder_attention_heads=4,
                encoder_ffn_dim=256,
                decoder_layers=1,
                decoder_attention_heads=4,
                decoder_ffn_dim=256,
                num_mel_bins=16,
                max_source_positions=32,
                vocab_size=VOCAB,
                dropout=0.0,
                attention_dropout=0.0,
                activation_dropout=0.0,
                encoder_layerdrop=0.0,
                use_cache=False,
            ),
            kwargs=lambda: {"input_features": torch.randn(2, 16, 64)},
        ),
        Case(
            "wav2vec2",
            hf_model(
                "Wav2Vec2Model",
                "Wav2Vec2Config",
                vocab_size=32,
                intermediate_size=256,
                conv_dim=(32,) * 7,
                num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=4,
                hidden_dropout=0.0,
                activation_dropout=0.0,
                attention_dropout=0.0,
                feat_proj_dropout=0.0,
                final_dropout=0.0,
                layerdrop=0.0,
                apply_spec_augment=False,
                **_WIDTH,
            ),
            kwargs=lambda: {"input_values": torch.randn(2, 8000)},
        ),
    )
}


def _one(name: str) -> dict[str, Any]:
    """One architecture's figures (run in a process of its own)."""
    torch.set_num_threads(1)
    result = figures(CASES[name], ("sgd",))
    return {
        "inference": (result.static_inference, result.measured_inference),
        "sgd": (result.static_training["sgd"], result.measured_training["sgd"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"architectures (default: all of {', '.join(CASES)})")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(json.dumps(_one(options.one)))
        return
    print("| architecture | inference static | measured | error | SGD static | measured | error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in options.names or CASES:
        run = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, timeout=600, check=False
        )
        if run.returncode != 0 or not run.stdout.strip():
            print(f"| {name} | failed: {(run.stderr.strip().splitlines() or ['?'])[-1][:80]} ||||||", flush=True)
            continue
        found = json.loads(run.stdout.strip().splitlines()[-1])
        cells = []
        for static, measured in (found["inference"], found["sgd"]):
            cells += [f"{static:,}", f"{measured:,}", f"{static / measured - 1:+.2%}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
