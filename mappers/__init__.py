"""HwGraph types, template timing contracts, mapping and FIFO sizing."""
from .contracts import Contract, Phase
from .hwgraph import Channel, Field, HwGraph, Instance, Layout
from .sdpa import MappingError, map_attention_head

__all__ = ["Contract", "Phase", "Channel", "Field", "HwGraph", "Instance", "Layout",
           "MappingError", "map_attention_head"]
