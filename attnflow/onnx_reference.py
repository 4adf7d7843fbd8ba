"""attnflow against onnxruntime on an ONNX model's layer stack (needs ``onnx`` and
``onnxruntime``, the test extra; nothing else in attnflow imports this).

:func:`stack_model` cuts the model at the stack that ``ir.onnx_frontend`` recognised: its
input tensor (the hidden states after the embeddings) becomes a graph input, its output
the only graph output; the other graph inputs the stack still reads (an
``attention_mask`` a mask is built from) stay inputs and are fed all ones (no padding),
as the front-end assumes. :func:`compare` runs that cut model in onnxruntime on hidden
states ``x`` and puts attnflow's float model and integer design on the same ``x`` beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hf_reference import attnflow_layers, figures


def stack_model(path, seq_len: int | None = None):
    """The ModelProto computing the recognised stack's output from its input tensor."""
    import onnx
    from onnx import TensorProto, helper

    from .ir.onnx_frontend import recognise
    from .ir.onnx_graph import read_model
    stack = recognise(path, seq_len)
    model = read_model(path)
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    keep, todo, needed = [], [stack.output], set()
    seen = set()
    while todo:
        t = todo.pop()
        if t in seen or t == stack.input:
            continue
        seen.add(t)
        n = producer.get(t)
        if n is None:
            needed.add(t)
            continue
        if id(n) not in {id(k) for k in keep}:
            keep.append(n)
        todo += [i for i in n.input if i]
    order = {id(n): k for k, n in enumerate(g.node)}
    keep.sort(key=lambda n: order[id(n)])
    inputs = [helper.make_tensor_value_info(stack.input, TensorProto.FLOAT,
                                            list(stack.input_shape))]
    inputs += [i for i in g.input if i.name in needed]
    inits = [t for t in g.initializer if t.name in needed]
    out = helper.make_tensor_value_info(stack.output, TensorProto.FLOAT, None)
    graph = helper.make_graph(keep, "attnflow_stack", inputs, [out], inits)
    cut = helper.make_model(graph, opset_imports=model.opset_import)
    cut.ir_version = model.ir_version
    return onnx.shape_inference.infer_shapes(cut)


def stack_input(path, feeds: dict, seq_len: int | None = None) -> np.ndarray:
    """The stack's input (N, d_model): onnxruntime's value of that tensor when the whole
    model runs on ``feeds`` (e.g. token ids), i.e. the model's own hidden states."""
    import onnx
    import onnxruntime as ort

    from .ir.onnx_frontend import recognise
    from .ir.onnx_graph import read_model
    stack = recognise(path, seq_len)
    model = read_model(path)
    model.graph.output.extend([onnx.ValueInfoProto(name=stack.input)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = sess.run([stack.input], feeds)[0]
    return np.asarray(x, np.float64).reshape(-1, stack.model["d_model"])


def _stack_feeds(cut, x, inputs) -> dict:
    """The cut model's feeds: ``x`` for the stack input, all ones for the rest."""
    feeds = {}
    shape0 = [d.dim_value for d in cut.graph.input[0].type.tensor_type.shape.dim]
    for name, shape, dtype in inputs:
        if name == cut.graph.input[0].name:
            feeds[name] = np.asarray(x, np.float32).reshape(shape0)
            continue
        shape = [s if isinstance(s, int) and k else 1 for k, s in enumerate(shape)]
        if len(shape) >= 2:
            shape[-1] = np.asarray(x).shape[0]
        feeds[name] = np.ones(shape, dtype)
    return feeds


def run_stack(path, x, seq_len: int | None = None, executor: str = "onnxruntime") -> np.ndarray:
    """The stack output (N, d_model) on hidden states ``x`` (N, d_model), computed by
    onnxruntime, or by QONNX's executor (``executor="qonnx"``, for graphs with QONNX
    ``Quant`` nodes; needs the ``qonnx`` package)."""
    from onnx import helper
    cut = stack_model(path, seq_len)
    n = np.asarray(x).shape[0]
    if executor == "qonnx":
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes
        wrapped = ModelWrapper(cut).transform(InferShapes())
        inputs = [(i.name, [d.dim_value or 1 for d in i.type.tensor_type.shape.dim],
                   helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
                  for i in cut.graph.input]
        y = execute_onnx(wrapped, _stack_feeds(cut, x, inputs))[cut.graph.output[0].name]
    else:
        import onnxruntime as ort
        sess = ort.InferenceSession(cut.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        inputs = [(i.name, i.shape, np.int64 if "int64" in i.type else
                   np.int32 if "int32" in i.type else np.float32) for i in sess.get_inputs()]
        y = sess.run(None, _stack_feeds(cut, x, inputs))[0]
    return np.asarray(y, np.float64).reshape(n, -1)


def export_model(family: str, config: dict, path, seq_len: int, opset: int | None = None,
                 dynamo: bool = True, dynamic: bool = False, seed: int = 0,
                 attention_mask: bool = False, attention: str = "eager"):
    """A transformers ``family`` model (``attnflow.hf_reference.FAMILIES``) from ``config``
    with its own random initialisation (seed ``seed``), exported by ``torch.onnx.export``
    to ``path`` (its last hidden state from ``input_ids``, or ``pixel_values`` for ViT;
    ``opset`` None: the exporter's default; ``dynamo`` False: the TorchScript exporter;
    ``dynamic``: a symbolic sequence axis; ``attention_mask``: a second input
    ``attention_mask``, text models; ``attention``: transformers' attention implementation,
    eager or sdpa, the default of a model loaded without one). Returns the torch model
    (float32, eval)."""
    import torch

    from .hf_reference import FAMILIES, _torch
    _, tf = _torch()
    cfg_name, model_name = FAMILIES[family]
    cfg = getattr(tf, cfg_name)(**config)
    cfg._attn_implementation = attention
    torch.manual_seed(seed)
    model = getattr(tf, model_name)(cfg).eval()
    vision = family == "vit"

    class Wrapper(torch.nn.Module):     # forward(tensor) -> last_hidden_state
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, mask=None):
            kw = {"pixel_values": x} if vision else {"input_ids": x}
            if mask is not None:
                kw["attention_mask"] = mask
            return self.inner(**kw).last_hidden_state

    if vision:
        size = cfg.image_size
        example = torch.rand(1, cfg.num_channels, size, size)
    else:
        example = torch.randint(3, cfg.vocab_size, (1, seq_len))
    name = "pixel_values" if vision else "input_ids"
    args, names = (example,), [name]
    if attention_mask and not vision:
        args, names = (example, torch.ones_like(example)), [name, "attention_mask"]
    kw = {"input_names": names, "output_names": ["last_hidden_state"], "dynamo": dynamo}
    if opset is not None:
        kw["opset_version"] = opset
    if dynamic and not vision:
        if dynamo:
            seq = torch.export.Dim("seq", min=2, max=512)
            kw["dynamic_shapes"] = tuple({1: seq} for _ in args)
        else:
            kw["dynamic_axes"] = {n: {1: "seq"} for n in names}
    with torch.no_grad():
        torch.onnx.export(Wrapper(model).eval(), args, str(path), **kw)
    return model


@dataclass(frozen=True)
class Comparison:
    float_model: dict       # figures of attnflow's float model against onnxruntime
    integer: dict           # figures of the integer design (golden model)
    design: object


def compare(path, x, seq_len: int | None = None, overrides=(), calibration=None,
            executor: str = "onnxruntime") -> Comparison:
    """attnflow (float model, integer design) against onnxruntime (or QONNX's executor)
    at the stack output, on hidden states ``x`` (N, d_model). ``calibration``: a .npy of
    other hidden states for the activation formats (default: the spec's random inputs)."""
    from .api import prepare
    from .ir.spec import load_spec
    x = np.asarray(x, np.float64)
    ref = run_stack(path, x, seq_len, executor)
    ov = [f"model.seq_len={x.shape[0]}", *overrides]
    if calibration is not None:
        ov.append(f"calibration.file={calibration}")
    design = prepare(load_spec(path, ov))
    flt, ints = attnflow_layers(design, x)
    return Comparison(figures(ref, flt[-1]), figures(ref, ints[-1]), design)


__all__ = ["stack_model", "stack_input", "run_stack", "compare", "Comparison", "export_model"]
