"""Encoder specs from a local Hugging Face ``config.json`` (nothing is downloaded).

:func:`spec_from_hf_config` reads the ``config.json`` of a BERT-, RoBERTa-, DistilBERT- or
ViT-style encoder or of a GPT-2-style decoder (or the folder holding it) and returns a
validated :class:`~attnflow.ir.spec.Spec` with ``model.type: encoder`` (a GPT-2 decoder
is the encoder stack with ``attention.kind: causal``, pre-norm, final norm); every other spec section
keeps its defaults unless ``overrides`` (``--set``-style, as for YAML specs) say
otherwise. ``attnflow.ir.spec.load_spec`` calls it for a folder or a ``.json`` file
without a top-level ``model`` mapping. The spec's ``name`` is the config's folder name made an identifier
(``examples/hf_bert_tiny/config.json`` -> ``hf_bert_tiny``), else the model type.

Mapping
-------

=====================  =========================  ==============  =========================
spec field             BERT / ViT key             DistilBERT key  GPT-2 key
=====================  =========================  ==============  =========================
``model.d_model``      ``hidden_size``            ``dim``         ``n_embd``
``model.heads``        ``num_attention_heads``    ``n_heads``     ``n_head``
``model.d_ff``         ``intermediate_size``      ``hidden_dim``  ``n_inner`` (null or
                                                                  missing: 4 * n_embd)
``model.layers``       ``num_hidden_layers``      ``n_layers``    ``n_layer``
``model.activation``   ``hidden_act``             ``activation``  ``activation_function``
``model.norm_eps``     ``layer_norm_eps``         (none)          ``layer_norm_epsilon``
=====================  =========================  ==============  =========================

* d_model, heads and layers are required (heads must divide d_model), d_ff too except
  for GPT-2; the activation defaults to gelu (GPT-2: gelu_new, below); the norm epsilon
  to 1e-12 (GPT-2: 1e-5; DistilBERT has no key: 1e-12)
* ``model.norm``: layernorm; ``model.norm_position``: post (BERT-style, DistilBERT) or
  pre (ViT-style, GPT-2); ``model.final_norm``: true for ViT-style (ViT's ``layernorm``)
  and GPT-2 (``ln_f``); ``model.attention.kind``: causal for GPT-2 (query i sees keys
  j <= i), full otherwise
* ``model.seq_len``: the ``seq_len`` argument (or ``--set model.seq_len=N``); for
  ViT/DeiT it defaults to the patch count (``image_size`` / ``patch_size``, squared) + 1
  class token (DeiT: + 2, with the distillation token)

``model_type`` picks the family: ``bert``, ``roberta``, ``xlm-roberta``, ``camembert``,
``electra`` (BERT-style: post-norm); ``distilbert``; ``vit``, ``deit`` (ViT-style:
pre-norm, LayerNorm after the last layer, sequence = image patches + class token (+
distillation token for DeiT)); ``gpt2`` (GPT-2-style decoder: ``ln_1`` -> causal
attention -> residual, ``ln_2`` -> MLP -> residual, ``ln_f`` after the last block).
Without ``model_type`` (old configs), the family is inferred from the keys: ``dim`` and
``n_heads`` -> DistilBERT, ``patch_size`` -> ViT, ``hidden_size`` -> BERT, ``n_embd``,
``n_head`` and ``n_layer`` -> GPT-2. Every model uses LayerNorm.

Activations, each built as the family defines it (``ir.numerics_act``: float reference
and integer definition): ``gelu`` and ``gelu_python`` are the exact (erf) GELU (spec
``gelu``); ``gelu_new``, ``gelu_pytorch_tanh`` and ``gelu_python_tanh`` its tanh form (spec
``gelu_tanh``, 4.8e-4 away from the erf GELU at x ~= +-2.7); ``gelu_fast`` the tanh form
as transformers' ``FastGELUActivation`` writes it (spec ``gelu_fast``); ``quick_gelu``
(x sigmoid(1.702 x)); ``silu`` and ``swish`` (x sigmoid(x), spec ``silu``); ``relu``.
Anything else (``tanh``, ``mish``, ``gelu_10``, ...) is rejected.

Rejected (one error line names every such field): an activation not listed above;
``position_embedding_type`` ``relative_key``/``relative_key_query`` (they add a learned
distance term *inside* the attention scores, which our attention does not compute;
``absolute`` position embeddings are added before the encoder and so are outside it);
``is_decoder`` (except GPT-2, which is one), ``add_cross_attention`` or
``is_encoder_decoder`` true (decoders of other families, cross-attention); ``qkv_bias``
false (ViT without Q/K/V biases: every spec layer has biases); GPT-2's
``scale_attn_weights`` false (scores without the 1/sqrt(d_head) scale) and
``scale_attn_by_inverse_layer_idx`` true (scores also divided by layer index + 1): both
change the score arithmetic, which is always q.k / sqrt(d_head) here. A ``seq_len``
above the model's positions (``max_position_embeddings``; for the RoBERTa family less
``pad_token_id + 1``; GPT-2: ``n_positions``, older configs ``n_ctx``, default 1024) is
rejected on ``model.seq_len``.

Ignored, because they do not change the encoder layers' arithmetic on post-embedding
inputs at inference time: embedding settings (``vocab_size``, ``type_vocab_size``,
``max_position_embeddings`` beyond the check above, ``position_embedding_type:
absolute``, ``pad_token_id``, ``embedding_size``, ``sinusoidal_pos_embds``,
``image_size``/``patch_size``/``num_channels`` beyond the ViT sequence length,
``encoder_stride``); dropout (``*dropout*``: inactive at inference); training settings
(``initializer_range``, ``gradient_checkpointing``); task heads and pooler
(``architectures``, ``num_labels``, ``id2label``, ``label2id``, ``pooler_*``,
``classifier_dropout``); run-time and bookkeeping keys (``torch_dtype``, ``use_cache``,
``chunk_size_feed_forward`` (the same arithmetic in chunks), ``output_*``,
``transformers_version``, ``tie_*``, token ids); GPT-2's ``vocab_size``,
``n_positions``/``n_ctx`` beyond the check above, ``*_pdrop``, ``summary_*`` (the
sequence-summary head), ``task_specific_params`` and ``reorder_and_upcast_attn`` (the
same attention computed in float32 in PyTorch: no change to the arithmetic we build).
Weights: when the config's folder holds ``model.safetensors`` (the checkpoint as Hugging
Face saves it), the spec reads it (``model.weights: {source: file, path: model.safetensors,
naming: <family>}``: ``ir.weights`` maps the family's tensor names, including GPT-2's
``Conv1D`` ``[in, out]`` weights and its fused ``c_attn``, to ours); an override of any
``model.weights`` field replaces that (e.g. ``--set model.weights.source=random``).
Without that file the weights are random, unless the folder holds a checkpoint that is
not read (``pytorch_model.bin``, a sharded ``model.safetensors.index.json``): that is an
error (convert it, or ask for random weights) rather than a silent random design.

Quantization: a config's spec takes its scales from the checkpoint (``quantization:
{weights: per_channel, activations: calibrated}``, ``ir.quantize``): a weight step per
output channel, and each activation tensor's format from a calibration run on
``calibration.file`` (hidden states, .npy), else on ``inputs.file``, else on random
inputs (``inputs.range``; real hidden states are better). ``--set
quantization.weights=fixed --set quantization.activations=fixed`` gives the fixed
formats of a YAML spec.

Errors are :class:`~attnflow.ir.spec.SpecError` lines ``<config path>: <key>: <message>``
naming the config's own keys (and spec fields for problems found after the mapping,
e.g. from ``overrides``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from .readers import NOT_FOUND, ReadError, file_problem, json_load
from .spec import (Spec, SpecError, _Checker, _divisors, _show, parse_override,
                   read_text_file, spec_from_dict)

__all__ = ["spec_from_hf_config", "HF_MODEL_TYPES", "HF_ACTIVATIONS"]

#: model_type -> family
HF_MODEL_TYPES = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert",
    "electra": "bert", "distilbert": "distilbert", "vit": "vit", "deit": "vit",
    "gpt2": "gpt2",
}
_ROBERTA_FAMILY = ("roberta", "xlm-roberta", "camembert")
#: HF activation name -> spec activation
HF_ACTIVATIONS = {
    "gelu": "gelu", "gelu_python": "gelu",
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_python_tanh": "gelu_tanh",
    "gelu_fast": "gelu_fast", "quick_gelu": "quick_gelu",
    "silu": "silu", "swish": "silu",
    "relu": "relu",
}
#: family -> spec field -> config key
_KEYS = {
    "bert": {"d_model": "hidden_size", "heads": "num_attention_heads",
             "d_ff": "intermediate_size", "layers": "num_hidden_layers",
             "activation": "hidden_act", "norm_eps": "layer_norm_eps"},
    "distilbert": {"d_model": "dim", "heads": "n_heads", "d_ff": "hidden_dim",
                   "layers": "n_layers", "activation": "activation", "norm_eps": None},
}
_KEYS["vit"] = _KEYS["bert"]
_KEYS["gpt2"] = {"d_model": "n_embd", "heads": "n_head", "d_ff": "n_inner",
                 "layers": "n_layer", "activation": "activation_function",
                 "norm_eps": "layer_norm_epsilon"}
#: a checkpoint's quantization: weight scales per output channel, activation formats
#: calibrated (``ir.quantize``); ``--set quantization.weights=fixed`` etc. change it
HF_QUANTIZATION = {"weights": "per_channel", "activations": "calibrated"}
#: the checkpoint read from a config's folder when it is there (Hugging Face's file name)
CHECKPOINT = "model.safetensors"
#: checkpoint files that are not read: the spec fails rather than use random weights
UNREAD_CHECKPOINTS = ("model.safetensors.index.json", "pytorch_model.bin",
                      "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
DEFAULT_EPS = 1e-12          # BERT, ViT and DistilBERT (DistilBERT has no config key)
DEFAULT_ACTIVATION = "gelu"
#: GPT-2's defaults (transformers' GPT2Config) where its config may leave a key out
GPT2_DEFAULTS = {"activation": "gelu_new", "norm_eps": 1e-5, "positions": 1024}


def _read_config(path: Path, source: str) -> dict:
    text = read_text_file(path, source)
    try:
        data = json_load(text)      # no repeated keys, non-finite numbers, deep nesting
    except ReadError as e:
        raise SpecError(source, "<file>", f"invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(source, "<file>", f"a Hugging Face config is a JSON object, got {_show(data)}")
    return data


def _family(c: _Checker, cfg: dict) -> tuple[str, str]:
    """(model_type, family)."""
    mt = cfg.get("model_type")
    allowed = ", ".join(sorted(HF_MODEL_TYPES))
    if mt is None:
        if "dim" in cfg and "n_heads" in cfg:
            return "distilbert", "distilbert"
        if "patch_size" in cfg:
            return "vit", "vit"
        if "hidden_size" in cfg:
            return "bert", "bert"
        if all(k in cfg for k in ("n_embd", "n_head", "n_layer")):
            return "gpt2", "gpt2"
        c.fail("model_type", f"missing, and the keys are not those of a supported model; "
                             f"allowed model types: {allowed}")
    if not isinstance(mt, str) or mt not in HF_MODEL_TYPES:
        shown = repr(mt) if isinstance(mt, str) else _show(mt)
        c.fail("model_type", f"unsupported value {shown}; allowed: {allowed} (encoders "
                             "and GPT-2-style decoders)")
    return mt, HF_MODEL_TYPES[mt]


def _unsupported(cfg: dict, family: str, act_key: str) -> list[tuple[str, str]]:
    """(config key, message) for every setting we cannot build."""
    problems = []
    act = cfg.get(act_key, GPT2_DEFAULTS["activation"] if family == "gpt2"
                  else DEFAULT_ACTIVATION)
    if not isinstance(act, str) or act not in HF_ACTIVATIONS:
        shown = repr(act) if isinstance(act, str) else _show(act)
        problems.append((act_key, f"unsupported value {shown}; allowed: "
                                  f"{', '.join(sorted(HF_ACTIVATIONS))}"))
    pos = cfg.get("position_embedding_type")
    if family == "bert" and pos in ("relative_key", "relative_key_query"):
        problems.append(("position_embedding_type",
                         f"{pos!r} adds relative-position terms inside the attention scores, "
                         "which are not built; allowed: absolute"))
    elif family == "bert" and pos not in (None, "absolute"):  # HF reads null as absolute
        shown = repr(pos) if isinstance(pos, str) else _show(pos)
        problems.append(("position_embedding_type",
                         f"unknown value {shown}; transformers knows absolute, relative_key "
                         "and relative_key_query, and attnflow builds absolute"))
    for key, what in (("is_decoder", "decoders of this family are not supported (GPT-2-style "
                                     "ones are: model_type gpt2)"),
                      ("add_cross_attention", "cross-attention is not supported (self-attention "
                                              "only)"),
                      ("is_encoder_decoder", "encoder-decoder models are not supported")):
        if cfg.get(key) is True and not (family == "gpt2" and key == "is_decoder"):
            problems.append((key, f"true: {what}"))
    if family == "gpt2":
        if cfg.get("scale_attn_weights", True) is not True:
            problems.append(("scale_attn_weights",
                             f"{_show(cfg.get('scale_attn_weights'))}: scores without the "
                             "1/sqrt(d_head) scale are not built; allowed: true"))
        if cfg.get("scale_attn_by_inverse_layer_idx", False) is not False:
            problems.append(("scale_attn_by_inverse_layer_idx",
                             f"{_show(cfg.get('scale_attn_by_inverse_layer_idx'))}: scores "
                             "divided by the layer index + 1 are not built; allowed: false"))
    if family == "vit" and cfg.get("qkv_bias", True) is not True:
        problems.append(("qkv_bias", f"{_show(cfg.get('qkv_bias'))}: Q/K/V without biases are "
                                     "not supported (every encoder layer has biases)"))
    return problems


def _vit_seq_len(c: _Checker, cfg: dict, model_type: str) -> int:
    def pair(key: str, default: int) -> tuple[int, int]:
        v = cfg.get(key, default)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return c.integer(v[0], key, 1), c.integer(v[1], key, 1)
        v = c.integer(v, key, 1)
        return v, v

    (ih, iw), (ph, pw) = pair("image_size", 224), pair("patch_size", 16)
    extra = 2 if model_type == "deit" else 1   # class token (+ distillation token)
    return (ih // ph) * (iw // pw) + extra


def _position_limit(cfg: dict, model_type: str, family: str,
                    source: str = "<config>") -> tuple[int, str] | None:
    if family == "vit":
        return None
    if family == "gpt2":
        key = "n_positions" if cfg.get("n_positions") is not None else "n_ctx"
        n = cfg.get(key, GPT2_DEFAULTS["positions"])
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            return None
        return n, (f"{key} {n}" if key in cfg else f"n_positions default {n}")
    mpe = cfg.get("max_position_embeddings", 512)
    if not isinstance(mpe, int) or isinstance(mpe, bool) or mpe < 1:
        raise SpecError(source, "max_position_embeddings",
                        f"must be an integer >= 1 (the model's positions), got {_show(mpe)}")
    if model_type in _ROBERTA_FAMILY:
        pad = cfg.get("pad_token_id", 1)
        if isinstance(pad, int) and not isinstance(pad, bool) and 0 <= pad < mpe:
            return mpe - pad - 1, (f"max_position_embeddings {mpe} less pad_token_id + 1 = "
                                   f"{pad + 1} (RoBERTa positions start after the padding index)")
    return mpe, f"max_position_embeddings {mpe}"


def _spec_name(path: Path, model_type: str) -> str:
    name = re.sub(r"\W", "_", path.parent.name or "", flags=re.ASCII)
    if not name or not re.search(r"[A-Za-z0-9]", name):
        name = re.sub(r"\W", "_", model_type, flags=re.ASCII)
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def _override_keys(overrides: Iterable) -> set[str]:
    return {(parse_override(ov) if isinstance(ov, str) else ov)[0].replace(" ", "")
            for ov in overrides}


def spec_from_hf_config(path: str | Path, seq_len: int | None = None,
                        overrides: Iterable = ()) -> Spec:
    """The encoder spec of the Hugging Face ``config.json`` at ``path`` (or in the folder
    ``path``) for sequences of ``seq_len`` tokens, with ``--set``-style ``overrides``.

    ``seq_len`` may be None when ``overrides`` set ``model.seq_len``, or for ViT/DeiT
    (their patch count). Raises SpecError (one line) for what cannot be built.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    source = str(path)
    overrides = list(overrides)
    c = _Checker(source)
    cfg = _read_config(path, source)
    model_type, family = _family(c, cfg)
    keys = _KEYS[family]

    problems = _unsupported(cfg, family, keys["activation"])
    if len(problems) == 1:
        c.fail(*problems[0])
    if problems:
        c.fail(", ".join(k for k, _ in problems),
               "cannot build: " + "; ".join(f"{k}: {m}" for k, m in problems))

    dims = {}
    for fld in ("d_model", "heads", "d_ff", "layers"):
        key = keys[fld]
        if family == "gpt2" and fld == "d_ff" and cfg.get(key) is None:
            dims[fld] = 4 * dims["d_model"]     # GPT-2: n_inner null -> 4 * n_embd
            continue
        if key not in cfg:
            c.fail(key, f"required for model_type {model_type} (the model's "
                        f"{fld}); give an integer >= 1")
        dims[fld] = c.integer(cfg[key], key, 1)
    if dims["d_model"] % dims["heads"]:
        c.fail(keys["heads"], f"{dims['heads']} heads do not divide {keys['d_model']} = "
                              f"{dims['d_model']}; valid head counts: "
                              f"{', '.join(map(str, _divisors(dims['d_model'])))}")
    eps = GPT2_DEFAULTS["norm_eps"] if family == "gpt2" else DEFAULT_EPS
    if keys["norm_eps"] is not None and keys["norm_eps"] in cfg:    # null too: an error
        eps = c.number(cfg[keys["norm_eps"]], keys["norm_eps"], 0, lo_open=True)

    model: dict[str, Any] = {
        "type": "encoder", **dims,
        "norm": "layernorm",
        "norm_position": "pre" if family in ("vit", "gpt2") else "post",
        "final_norm": family in ("vit", "gpt2"),
        "norm_eps": eps,
        "activation": HF_ACTIVATIONS[cfg.get(keys["activation"], GPT2_DEFAULTS["activation"]
                                             if family == "gpt2" else DEFAULT_ACTIVATION)],
    }
    if family == "gpt2":
        model["attention"] = {"kind": "causal"}
        for key in ("n_positions", "n_ctx"):
            n = cfg.get(key)
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
                c.fail(key, f"must be an integer >= 1 (the model's positions), got {_show(n)}")
    ov_keys = _override_keys(overrides)
    if not any(k == "model" or k.startswith("model.weights") for k in ov_keys):
        problem = file_problem(path.parent / CHECKPOINT)
        if problem not in (None, NOT_FOUND):
            raise SpecError(source, "model.weights", f"{path.parent / CHECKPOINT} {problem}; "
                            "restore the file, or --set model.weights.source=random")
        if problem is None:
            model["weights"] = {"source": "file", "path": CHECKPOINT, "naming": family}
        else:
            other = [f for f in UNREAD_CHECKPOINTS if (path.parent / f).is_file()]
            if other:
                raise SpecError(source, "model.weights",
                                f"{path.parent / other[0]} is not read (only a single "
                                f"{CHECKPOINT}); save the model as {CHECKPOINT}, or "
                                "--set model.weights.source=random for random weights")
    limit = _position_limit(cfg, model_type, family, source)
    if seq_len is None and family == "vit":
        seq_len = _vit_seq_len(c, cfg, model_type)
    if seq_len is not None:
        model["seq_len"] = seq_len
    elif not ov_keys & {"model.seq_len", "model"}:
        most = f" (this model has at most {limit[0]} positions)" if limit else ""
        raise SpecError(source, "model.seq_len",
                        f"a {model_type} config has no sequence length: give one, e.g. "
                        f"--set model.seq_len=128{most}")

    spec = spec_from_dict({"name": _spec_name(path, model_type), "model": model,
                           "quantization": dict(HF_QUANTIZATION)}, source,
                          overrides, base_dir=path.parent)
    if limit and spec.model.type == "encoder" and spec.model.seq_len > limit[0]:
        raise SpecError(source, "model.seq_len",
                        f"{spec.model.seq_len} tokens exceed this model's {limit[0]} positions "
                        f"({limit[1]}); use at most {limit[0]}")
    return spec
