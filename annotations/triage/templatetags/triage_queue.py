"""The triage queue's rows, built in one pass (as the session list does in ``sessions.templatetags.browse``).

The queue is re-rendered for every moderator whenever any cluster changes (it polls every 4 s), and fifty rows of a
dozen cells each made most of its response time as template nodes (variable look-ups, filters, escaping). Here each
row is one ``format_html`` call (every value escaped) around fragments that repeat from row to row (badges,
environments, severity), which are built once; the markup is the same as the template's was.
"""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

_ROUTED = format_html('<span class="sub muted">{}</span>', "\u2192 experts")
# Ids and counts are printed as plain numbers (str(int): never localised).
_ROW = """
      <tr class="{classes}" data-cluster-id="{pk}" data-href="{href}" tabindex="-1">{select}
        <td class="cell-title">
          <a class="cluster-link" href="{href}">{title}</a>
          {badges}
          <span class="sub muted">#{pk}{severity}</span>
        </td>
        <td class="num">{priority}</td>
        <td class="num cell-size">{size}</td>
        <td class="num">{growth}</td>
        <td><span class="status status-{status}">{status_label}</span>{resolution}
          {claim}</td>
        <td>{owner}{routed}</td>
        <td class="cell-where">{environments}
          <span class="sub mono">{model_versions}</span></td>
        <td class="nowrap">{age}</td>
        <td>{claim_button}</td>
      </tr>"""
_SELECT = ("""
        <td class="sel"><input type="checkbox" name="clusters" value="{0}" form="bulk-form" """
           """aria-label="Select cluster {0}"></td>""")
_CLAIM_BUTTON = '<button type="submit" class="link" form="claim-form" formaction="{}claim" data-claim>Claim</button>'


@lru_cache(maxsize=8)
def _badges(new: bool, growing: bool, late: bool) -> SafeString:
    return format_html_join(" ", '<span class="badge {}">{}</span>', (
        badge for flag, badge in ((new, ("tone-new", "new")), (growing, ("tone-neg", "growing fast")),
                                  (late, ("tone-late", "past SLA"))) if flag))


@lru_cache(maxsize=16)
def _severity(severity: int) -> SafeString | str:
    return format_html(" \u00b7 severity {}", str(severity)) if severity else ""


@lru_cache(maxsize=16)
def _resolution(label: str) -> SafeString | str:
    return format_html(' <span class="muted">({})</span>', label) if label else ""


@lru_cache(maxsize=256)
def _environments(environments: tuple[str, ...]) -> SafeString:
    return format_html_join(" ", '<span class="badge env env-{0}">{0}</span>', ((e,) for e in environments))


def _row(row, selectable: bool) -> SafeString:
    pk = str(row.pk)
    return format_html(
        _ROW,
        classes=row.classes,
        pk=pk,
        href=row.href,
        select=format_html(_SELECT, pk) if selectable else "",
        title=row.title,
        badges=_badges(row.is_new_badge, row.is_fast_growing, row.sla_breached),
        severity=_severity(row.max_severity),
        priority=row.priority_text,
        size=str(row.size),
        growth=str(row.growth_24h),
        status=row.status,
        status_label=row.status_label,
        resolution=_resolution(row.resolution_label),
        claim=format_html('<span class="sub muted claim-note">claimed by {}</span>', row.claimed_by)
        if row.claimed_by else "",
        owner=row.owner or "\u2014",
        routed=_ROUTED if row.routed else "",
        environments=_environments(tuple(row.environments)),
        model_versions=row.model_versions,
        age=row.age,
        claim_button=format_html(_CLAIM_BUTTON, row.href) if row.is_open else "",
    )


@register.simple_tag
def queue_rows(rows, can_triage: bool) -> SafeString:
    """The ``<tr>`` of each queue row (``annotations.triage.selectors.QueueRow``), every value escaped; moderators
    get the bulk-action checkbox."""
    return format_html_join("", "{}", ((_row(row, bool(can_triage)),) for row in rows))
