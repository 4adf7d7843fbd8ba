"""Cross-check against ``transformers`` (the optional extra ``attnflow[hf]``: torch and
transformers; nothing here is imported by the rest of attnflow).

:func:`make_checkpoint` builds a model of one family from a config with the family's own
random initialisation (``from_config``: linear weights N(0, initializer_range**2), zero
biases, LayerNorm 1 and 0; GPT-2's residual projections scaled by 1/sqrt(2 n_layer)) and
saves it with ``save_pretrained`` (``config.json`` + ``model.safetensors``, float32), the
folder a user hands to attnflow. :func:`hidden_states` draws the encoder's input the way
the family makes it: its own embeddings of random token ids (an image of uniform pixels
for ViT), so the scale of the hidden states is the family's. :func:`reference_layers`
runs the checkpoint's blocks in float64 (eager attention; GPT-2 with an explicit causal
mask) on those hidden states and returns the output after every layer, the last one
after the final norm (ViT's ``layernorm``, GPT-2's ``ln_f``), which is what attnflow's
stack computes after every layer.

:func:`compare` puts attnflow's float model and integer design (``attnflow.api.prepare``
on the folder, the hidden states as ``inputs.file``) beside it: cosine and max abs error
per layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: family -> (transformers config class, model class) names
FAMILIES = {
    "bert": ("BertConfig", "BertModel"),
    "roberta": ("RobertaConfig", "RobertaModel"),
    "distilbert": ("DistilBertConfig", "DistilBertModel"),
    "vit": ("ViTConfig", "ViTModel"),
    "gpt2": ("GPT2Config", "GPT2Model"),
}


def _torch():
    try:
        import torch
        import transformers
    except ImportError as e:       # pragma: no cover - the extra is missing
        raise ImportError("the cross-check needs torch and transformers: "
                          "pip install -e '.[hf]'") from e
    return torch, transformers


def make_checkpoint(family: str, config: dict, folder, seed: int = 0):
    """A ``family`` model from ``config`` (keyword arguments of its config class), random
    init seeded with ``seed``, saved to ``folder``; returns the model (float32, eval)."""
    torch, tf = _torch()
    cfg_name, model_name = FAMILIES[family]
    cfg = getattr(tf, cfg_name)(**config)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(tf, model_name)(cfg).eval()
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    return model


def load_model(family: str, folder):
    """The saved model back (float64, eval, torch's SDPA attention: ViT's eager attention takes its softmax in float32)."""
    torch, tf = _torch()
    _, model_name = FAMILIES[family]
    model = getattr(tf, model_name).from_pretrained(str(folder), attn_implementation="sdpa")
    return model.double().eval()


def hidden_states(model, family: str, seq_len: int, seed: int = 0) -> np.ndarray:
    """The encoder input (seq_len, d_model) as the family's embeddings make it."""
    torch, _ = _torch()
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    with torch.no_grad():
        if family == "vit":
            size = cfg.image_size
            pix = torch.rand((1, cfg.num_channels, size, size), generator=gen,
                             dtype=torch.float64) * 2 - 1
            x = model.embeddings(pix)
        else:
            low = 3 if family == "roberta" else 0      # RoBERTa: ids 0..2 are special
            ids = torch.randint(low, cfg.vocab_size, (1, seq_len), generator=gen)
            if family == "gpt2":
                x = model.wte(ids) + model.wpe(torch.arange(seq_len)[None, :])
            else:
                x = model.embeddings(input_ids=ids)
    x = x[0].detach().numpy().astype(np.float64)
    if x.shape[0] != seq_len:
        raise ValueError(f"{family}: the embeddings give {x.shape[0]} tokens, not {seq_len}")
    return x


def _blocks(model, family: str):
    if family == "gpt2":
        return model.h, model.ln_f
    if family == "distilbert":
        return model.transformer.layer, None
    # transformers 5 keeps ViT's blocks in ``layers`` (4: ``encoder.layer``)
    layers = model.layers if hasattr(model, "layers") else model.encoder.layer
    return layers, model.layernorm if family == "vit" else None


def reference_layers(model, family: str, x) -> list[np.ndarray]:
    """transformers' blocks on hidden states ``x`` (N, d_model), float64: the output after
    every layer (the last after the final norm, if the family has one)."""
    torch, _ = _torch()
    blocks, final = _blocks(model, family)
    h = torch.as_tensor(np.asarray(x, np.float64))[None]
    n = h.shape[1]
    mask = None
    if family == "gpt2":       # additive causal mask: key j > query i is masked
        mask = torch.triu(torch.full((n, n), torch.finfo(torch.float64).min,
                                     dtype=torch.float64), 1)[None, None]
    outs = []
    with torch.no_grad():
        for i, block in enumerate(blocks):
            out = block(h, attention_mask=mask)
            h = out[0] if isinstance(out, tuple) else out
            y = final(h) if final is not None and i == len(blocks) - 1 else h
            outs.append(y[0].numpy().copy())
    return outs


def figures(ref, got) -> dict:
    """Cosine and max abs error of ``got`` against ``ref`` (same shape, real units)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    cos = float((ref * got).sum() / (np.linalg.norm(ref) * np.linalg.norm(got)))
    return {"cosine": cos, "max_abs_error": float(np.abs(ref - got).max()),
            "max_abs_ref": float(np.abs(ref).max())}


@dataclass(frozen=True)
class Comparison:
    """attnflow against transformers on the same hidden states, per layer."""
    float_model: list      # figures of attnflow's float model, per layer
    integer: list          # figures of the integer design (golden model), per layer
    design: object         # the attnflow Design


def attnflow_layers(design, x) -> tuple[list, list]:
    """(float, integer) outputs of ``design`` after every layer, real units: the float
    model on ``x`` itself, the integer design on ``x`` rounded to its input format."""
    from .ir.graph import interpret
    from .ir.numerics import quantize
    graph, lowered = design.graph, design.lowered
    outs = list(graph.g.graph["layer_outputs"])
    if design.final is not None:
        outs[-1] = graph.outputs[0]
    x_fmt = graph.node("x")["type"].fmt
    flts = interpret(graph, {"x": np.asarray(x, np.float64)}, "float")
    ints = interpret(lowered, {"x": quantize(x, x_fmt)})
    res_f, res_i = [], []
    for n in outs:
        res_f.append(flts[n])
        res_i.append(ints[n] * 2.0 ** -graph.node(n)["type"].fmt.frac)
    return res_f, res_i


def compare(folder, family: str, seq_len: int, seed: int = 0, overrides=(),
            calibration_seed: int | None = None) -> Comparison:
    """attnflow's float model and integer design on the checkpoint in ``folder`` against
    transformers' own forward, on the family's hidden states (``hidden_states`` of
    ``seed``); the activation formats are calibrated on other hidden states (those of
    ``calibration_seed``, default seed + 1), not on the ones compared."""
    from .api import prepare
    from .ir.spec import load_spec
    model = load_model(family, folder)
    x = hidden_states(model, family, seq_len, seed)
    ref = reference_layers(model, family, x)
    folder = Path(folder).resolve()
    xfile = folder / f"hidden_n{seq_len}_s{seed}.npy"
    np.save(xfile, x)
    cal_seed = seed + 1 if calibration_seed is None else calibration_seed
    cfile = folder / f"hidden_n{seq_len}_s{cal_seed}.npy"
    np.save(cfile, hidden_states(model, family, seq_len, cal_seed))
    spec = load_spec(folder, [f"model.seq_len={seq_len}", f"inputs.file={xfile}",
                              f"calibration.file={cfile}", *overrides])
    design = prepare(spec)
    flt, ints = attnflow_layers(design, x)
    return Comparison([figures(r, f) for r, f in zip(ref, flt)],
                      [figures(r, g) for r, g in zip(ref, ints)], design)


def bert_base(layers: int = 12, positions: int = 512) -> dict:
    """BERT-base dimensions (``BertConfig``'s defaults, written out)."""
    return dict(hidden_size=768, num_hidden_layers=layers, num_attention_heads=12,
                intermediate_size=3072, max_position_embeddings=positions)


def gpt2_small(layers: int = 12, positions: int = 1024) -> dict:
    """GPT-2 small dimensions (``GPT2Config``'s defaults, written out)."""
    return dict(n_embd=768, n_layer=layers, n_head=12, n_positions=positions)


__all__ = ["FAMILIES", "make_checkpoint", "load_model", "hidden_states", "reference_layers",
           "figures", "compare", "attnflow_layers", "bert_base", "gpt2_small"]
