"""The progress stages: one ordered list that the tracker, the jobs and the docs share.

Every :class:`~dino_tracker_vfx.progress.Progress` names one of these stages (it refuses any other name),
so a job's overall progress (``jobs/status.py``) knows where each event lies. ``STAGES`` is in the
order a tracking job passes through them; ``job_weight`` is the stage's share of a whole job (0: it
takes no measurable part of one). docs/jobs.md lists the same table (a test compares them).

Importing this module imports nothing heavy (no torch): job tools read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    label: str
    job_weight: float


STAGES: tuple[Stage, ...] = (
    Stage("queued", "waiting for a worker", 0.0),
    Stage("waiting", "waiting for the shot lock", 0.0),
    Stage("weights", "fetching model weights", 0.0),
    Stage("load", "reading frames", 0.02),
    Stage("flow", "optical flow", 0.06),
    Stage("tracklets", "flow tracklets (training correspondences)", 0.03),
    Stage("features", "DINO features", 0.05),
    Stage("foreground", "foreground masks", 0.02),
    Stage("best_buddies", "DINO best-buddies", 0.05),
    Stage("train", "test-time training", 0.62),
    Stage("refine", "refined features of every frame", 0.02),
    Stage("infer", "tracking the queries", 0.05),
    Stage("drift", "drift correction (direct flows)", 0.02),
    Stage("occlusion", "visibility", 0.02),
    Stage("plate_refine", "sub-pixel pattern refinement at plate resolution", 0.03),
    Stage("reacquire", "re-acquisition after occlusion", 0.01),
    Stage("propagate", "object masks", 0.02),
    Stage("outputs", "writing the outputs", 0.02),
    # outside tracking jobs
    Stage("preview", "rendering a preview", 0.0),
    Stage("eval", "evaluation", 0.0),
    Stage("batch", "batch of jobs", 0.0),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def check(name: str) -> str:
    """``name`` when it is a known stage, else ValueError (a programming error: a stage missing here)."""
    if name not in BY_NAME:
        raise ValueError(f"unknown progress stage {name!r}: add it to dino_tracker_vfx/stages.py (known: "
                         f"{', '.join(NAMES)})")
    return name


def job_fraction(name: str | None, frac: float) -> float:
    """Overall 0..1 progress of a job at ``frac`` (0..1) through stage ``name``; -1.0 for an unknown name."""
    if name not in BY_NAME:
        return -1.0
    total = sum(s.job_weight for s in STAGES)
    before = 0.0
    for s in STAGES:
        if s.name == name:
            return min(1.0, (before + s.job_weight * max(0.0, min(1.0, frac))) / total)
        before += s.job_weight
    return -1.0  # pragma: no cover


__all__ = ["Stage", "STAGES", "BY_NAME", "NAMES", "check", "job_fraction"]
