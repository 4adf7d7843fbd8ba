"""Cycle-accurate simulator: DAM timing engine + bit-exact behavioural models."""
from .engine import Deadlock
from .run import SimResult, simulate
from .schedule import Schedule, make_schedule, schedule_from_spec

__all__ = ["Deadlock", "SimResult", "simulate", "Schedule", "make_schedule", "schedule_from_spec"]
