"""Reads for browsing conversation logs, one module per page part:

* ``filters``: the list's filters as SQL conditions (also bulk tagging's "every match");
* ``conversation_list``: the filtered, keyset-paginated list;
* ``choices``: the values of the filter drop-downs;
* ``trail``: one conversation's turns, documents, tool calls and feedback for its detail page.

Every function runs a fixed number of SQL queries whatever the data size (the list: one; the filter choices: one;
the trail: three), and none counts rows over the whole table.
"""

from sessions.selectors.choices import MAX_CHOICES, FilterChoices, conversation_filter_choices
from sessions.selectors.conversation_list import (
    LIST_COLUMNS,
    PAGE_SIZE,
    WINDOW,
    ConversationPage,
    ConversationRow,
    Cursor,
    conversation_list,
)
from sessions.selectors.filters import ConversationFilters, conversation_match_sql
from sessions.selectors.trail import DocumentView, ToolCallView, Trail, conversation_trail, pretty

__all__ = [
    "LIST_COLUMNS", "MAX_CHOICES", "PAGE_SIZE", "WINDOW", "ConversationFilters", "ConversationPage",
    "ConversationRow", "Cursor", "DocumentView", "FilterChoices", "ToolCallView", "Trail",
    "conversation_filter_choices", "conversation_list", "conversation_match_sql", "conversation_trail", "pretty",
]  # fmt: skip
