"""Shared test helpers."""
from attnflow.ir.spec import load_spec

EXAMPLE = "examples/sdpa_online.yaml"


def spec(variant="online", n=8, d=4, *extra):
    return load_spec(EXAMPLE, [f"model.seq_len={n}", f"model.head_dim={d}",
                               f"model.attention.variant={variant}", *extra])
