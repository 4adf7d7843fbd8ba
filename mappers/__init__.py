"""HwGraph types and template timing contracts; the mapping of designs onto templates
(``sdpa``, ``window``, ``split``, ``decode``, ``encoder``), folding and FIFO sizing; the
template registry (``catalog``).

Only the graph and contract types are imported here: the template families
(``attnflow.templates``) import them, and the mapping modules import the families.
"""
from .contracts import Contract, Phase
from .hwgraph import Channel, Field, HwGraph, Instance, Layout

__all__ = ["Contract", "Phase", "Channel", "Field", "HwGraph", "Instance", "Layout"]
