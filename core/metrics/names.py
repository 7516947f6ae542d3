"""What the rollup writes: metric names, their kind, grains and the events they count."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from core.events.types import EventType
from core.identity.models import Role


class Grain(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> timedelta:
        return timedelta(hours=1) if self is Grain.HOUR else timedelta(days=1)


class Metric(StrEnum):
    # Flows: what happened within the bucket; recounted from the source rows' timestamps.
    SIGNUPS = "signups"  # by role
    ONBOARDING_STARTED = "onboarding_started"  # by role
    # The funnel: people who completed a stage in the bucket, by "role:STAGE".
    ONBOARDING_STEPS = "onboarding_steps"
    ONBOARDING_COMPLETED = "onboarding_completed"  # by role
    ONBOARDING_MEDIAN_SECONDS = "onboarding_median_seconds"  # start to completion, by role
    INVITATIONS_SENT = "invitations_sent"
    INVITATIONS_ACCEPTED = "invitations_accepted"
    INVITATIONS_EXPIRED = "invitations_expired"
    DEAD_LETTERS = "dead_letters"  # platform only, by queue
    # Levels: the state as of the last rollup within the bucket; a bucket without a point
    # kept the value of the one before.
    PEOPLE = "people"  # accounts, by role
    ACTIVE_1D = "active_1d"  # people who signed in within a day, by role
    ACTIVE_7D = "active_7d"
    ACTIVE_30D = "active_30d"
    # Of the people with an onboarding (every client and therapist), those who completed it.
    ONBOARDING_DONE = "onboarding_done"
    ACTIVE_PRACTICES = "active_practices"  # active, and a member signed in within 30 days
    OUTBOX_BACKLOG = "outbox_backlog"  # platform only: events not yet handed to the workers


FLOWS = frozenset({
    Metric.SIGNUPS, Metric.ONBOARDING_STARTED, Metric.ONBOARDING_STEPS,
    Metric.ONBOARDING_COMPLETED, Metric.ONBOARDING_MEDIAN_SECONDS, Metric.INVITATIONS_SENT,
    Metric.INVITATIONS_ACCEPTED, Metric.INVITATIONS_EXPIRED, Metric.DEAD_LETTERS,
})
LEVELS = frozenset(Metric) - FLOWS

ACTIVE_WINDOWS: dict[Metric, timedelta] = {
    Metric.ACTIVE_1D: timedelta(days=1),
    Metric.ACTIVE_7D: timedelta(days=7),
    Metric.ACTIVE_30D: timedelta(days=30),
}
PRACTICE_ACTIVITY_WINDOW = Metric.ACTIVE_30D

PLATFORM = "platform"  # the scope of platform-wide points (tenant_id NULL)
NO_DIMENSION = ""
TENANT_ROLES = (Role.CLIENT.value, Role.THERAPIST.value)  # admins belong to no practice
PLATFORM_ONLY_ROLES = (Role.ADMIN.value,)
ONBOARDING_ROLES = (Role.CLIENT.value, Role.THERAPIST.value)

# A session begins with one of these, for the account it names (switching role moves the
# session to another account). "Active" means signed in, as the events record it.
SIGN_IN_TYPES = (EventType.USER_LOGIN.value, EventType.ROLE_SWITCHED.value)
# Events the flows count, each into one metric.
FLOW_EVENT_METRICS: dict[str, Metric] = {
    EventType.ONBOARDING_STARTED.value: Metric.ONBOARDING_STARTED,
    EventType.ONBOARDING_STAGE_COMPLETED.value: Metric.ONBOARDING_STEPS,
    EventType.ONBOARDING_COMPLETED.value: Metric.ONBOARDING_COMPLETED,
    EventType.INVITATION_SENT.value: Metric.INVITATIONS_SENT,
    EventType.INVITATION_ACCEPTED.value: Metric.INVITATIONS_ACCEPTED,
}
# Every event type the rollup reads, in one fixed order: the partial index on events covers
# exactly these, and each query repeats the same list so that both databases use it.
COUNTED_EVENT_TYPES = (
    *FLOW_EVENT_METRICS,
    EventType.ONBOARDING_REOPENED.value,
    *SIGN_IN_TYPES,
)
