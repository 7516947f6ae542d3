"""The onboarding state machine: stages per role and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    STARTED = "STARTED"
    PERSONAL_INFO = "PERSONAL_INFO"
    PROFESSIONAL_INFO = "PROFESSIONAL_INFO"
    TERMS = "TERMS"
    COMPLETED = "COMPLETED"

    @property
    def slug(self) -> str:
        return self.value.lower().replace("_", "-")

    @classmethod
    def from_slug(cls, slug: str) -> Stage | None:
        value = (slug or "").upper().replace("-", "_")
        return cls(value) if value in cls.__members__ else None


# The path through the wizard for each role that onboards. Admins (made by the CLI) do not.
FLOWS: dict[str, tuple[Stage, ...]] = {
    "therapist": (Stage.STARTED, Stage.PERSONAL_INFO, Stage.PROFESSIONAL_INFO, Stage.TERMS,
                  Stage.COMPLETED),
    "client": (Stage.STARTED, Stage.PERSONAL_INFO, Stage.TERMS, Stage.COMPLETED),
}

# Every allowed move, written out: forward one stage at a time (never skipping), back to any
# earlier stage to edit it. Leaving COMPLETED happens only by reopening (new terms, new
# required field), never through a person's move.
TRANSITIONS: dict[str, dict[Stage, frozenset[Stage]]] = {
    "therapist": {
        Stage.STARTED: frozenset({Stage.PERSONAL_INFO}),
        Stage.PERSONAL_INFO: frozenset({Stage.PROFESSIONAL_INFO, Stage.STARTED}),
        Stage.PROFESSIONAL_INFO: frozenset({Stage.TERMS, Stage.PERSONAL_INFO, Stage.STARTED}),
        Stage.TERMS: frozenset({Stage.COMPLETED, Stage.PROFESSIONAL_INFO, Stage.PERSONAL_INFO,
                                Stage.STARTED}),
        Stage.COMPLETED: frozenset(),
    },
    "client": {
        Stage.STARTED: frozenset({Stage.PERSONAL_INFO}),
        Stage.PERSONAL_INFO: frozenset({Stage.TERMS, Stage.STARTED}),
        Stage.TERMS: frozenset({Stage.COMPLETED, Stage.PERSONAL_INFO, Stage.STARTED}),
        Stage.COMPLETED: frozenset(),
    },
}

# Stages whose data must be valid before the next stage (and COMPLETED) can be reached.
DATA_STAGES = frozenset({Stage.PERSONAL_INFO, Stage.PROFESSIONAL_INFO, Stage.TERMS})


def onboards(role: str) -> bool:
    return role in FLOWS


def flow(role: str) -> tuple[Stage, ...]:
    return FLOWS[role]


def allowed(role: str, source: Stage, target: Stage) -> bool:
    return target in TRANSITIONS[role].get(source, frozenset())


def next_stage(role: str, stage: Stage) -> Stage:
    stages = FLOWS[role]
    return stages[min(stages.index(stage) + 1, len(stages) - 1)]


def is_forward(role: str, source: Stage, target: Stage) -> bool:
    stages = FLOWS[role]
    return stages.index(target) > stages.index(source)


def required_before(role: str, target: Stage) -> tuple[Stage, ...]:
    """The data stages that must be valid for `target` to be reached."""
    stages = FLOWS[role]
    return tuple(s for s in stages[: stages.index(target)] if s in DATA_STAGES)
