"""The MOP scheduler and its backends."""

from hopper.mop_scheduler.scheduler import EpochReport, Scheduler, visit_key

__all__ = ["EpochReport", "Scheduler", "visit_key"]
