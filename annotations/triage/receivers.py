"""How triage plugs into the recall API (connected in ``TriageConfig.ready()``): each cluster's guidance note is
returned with the cases the API recalls from that cluster (``annotations.recall.api.GUIDANCE_PROVIDERS``)."""

from __future__ import annotations

from annotations.recall.api import GUIDANCE_PROVIDERS
from annotations.triage.selectors import recall_guidance

if recall_guidance not in GUIDANCE_PROVIDERS:
    GUIDANCE_PROVIDERS.append(recall_guidance)
