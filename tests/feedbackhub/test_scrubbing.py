"""The private-data scrubber: each kind found and replaced by its placeholder, look-alikes left alone."""

import pytest
from django.test import override_settings

from feedbackhub.scrubbing import ScrubTally, scrub


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        ("Write to jane.doe+bank@example.co.uk today", "Write to [EMAIL] today", {"EMAIL": 1}),
        ("Call +44 20 7946 0958 or (415) 555-2671.", "Call [PHONE] or [PHONE].", {"PHONE": 2}),
        ("Card 4111 1111 1111 1111 was charged", "Card [CARD] was charged", {"CARD": 1}),
        ("Card 4111-1111-1111-1111.", "Card [CARD].", {"CARD": 1}),
        ("IBAN GB82 WEST 1234 5698 7654 32 or DE89370400440532013000", "IBAN [IBAN] or [IBAN]", {"IBAN": 2}),
    ],
)
def test_each_kind_is_replaced_by_its_placeholder(text, expected, counts):
    result = scrub(text)
    assert result.text == expected
    assert result.counts == counts
    assert result.changed


@pytest.mark.parametrize(
    "text",
    [
        "Your refund of $1,240.50 on 2024-06-03 is on its way.",
        "Order 4111-1111-1111-1112 fails the card checksum.",  # one digit off a valid card number
        "Reference 20240603123456 and ticket 0000000000000000",
        "GB82 is not an IBAN on its own",
        "An @ sign alone, or user@localhost, is not an address we can mail.",
        "",
    ],
)
def test_look_alikes_are_left_alone(text):
    result = scrub(text)
    assert result.text == text
    assert not result.changed


@override_settings(SCRUB_PATTERNS={"ACCOUNT": r"ACC-\d{8}"})
def test_configured_patterns_get_their_own_placeholder():
    assert scrub("Account ACC-12345678 is frozen").text == "Account [ACCOUNT] is frozen"


@override_settings(SCRUB_ENABLED=False)
def test_scrubbing_can_be_turned_off():
    assert scrub("jane@example.com").text == "jane@example.com"


def test_a_tally_adds_up_the_counts_of_many_texts():
    tally = ScrubTally()
    out = [tally.scrub(t) for t in ["a@example.com", "b@example.com and 4111 1111 1111 1111", "nothing"]]
    assert out == ["[EMAIL]", "[EMAIL] and [CARD]", "nothing"]
    assert tally.as_dict() == {"CARD": 1, "EMAIL": 2}
    assert tally.total == 3
