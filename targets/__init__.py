"""Targets: device descriptions, resource estimates, synthesis with Yosys/nextpnr, and the
comparison of estimate and measurement (see README: Targets and resources)."""
from .devices import Device, DeviceError, known_devices, load_device
from .estimate import Estimate, Overflow, estimate, fit
from .synth import SynthError, SynthResult, synthesize
from .compare import compare

__all__ = ["Device", "DeviceError", "known_devices", "load_device", "Estimate", "Overflow",
           "estimate", "fit", "SynthError", "SynthResult", "synthesize", "compare"]
