"""The status of one external thing the operator launched: a Skaha session, a job, a Rucio rule.

One sub-model for every kind that launches (docs/design.md §4.3): the create-pending marker
(`pendingSince`, written with a guarded write before the request is sent), the name the thing
carries (derived from the object's UID, so it can be found again), the id once known, how many
requests were sent, what was last observed of it, and when other things carrying our names were
last looked for (late commits).
"""

from __future__ import annotations

from pydantic import Field

from skaha_operator.domain.base import WireModel
from skaha_operator.domain.common import Timestamp


class Launch(WireModel):
    """One launched external resource, as far as the operator knows it."""

    name: str | None = Field(
        None,
        description="The name the resource carries (derived from the object's UID), or for a "
        "Rucio rule the DID and RSE expression it is unique for.",
        max_length=512,
    )
    pending_since: Timestamp | None = Field(
        None, description="Create-pending marker: set before the request is sent."
    )
    attempts: int | None = Field(
        None,
        description="Requests sent. Another is sent only when a lost one is not found by name "
        "after the grace period.",
        ge=0,
    )
    id: str | None = Field(None, description="The external id, once known.", max_length=128)
    observed: str | None = Field(
        None, description="The state last observed (Pending, Running, OK, ...).", max_length=63
    )
    swept_at: Timestamp | None = Field(
        None, description="When resources carrying our names but not our id were last removed."
    )
