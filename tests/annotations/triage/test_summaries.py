"""A cluster's title sentence and snippets from its members' texts (plain strings, no database)."""

from annotations.recall.text import annotation_text, feedback_event_text
from annotations.triage import summaries


def _event(text: str = "", correction: str = "", query: str = "How much is the visa fee for Japan?") -> str:
    return feedback_event_text(kind_label="Thumbs down", rating=None, categories=["Wrong facts"], text=text,
                               correction=correction, query=query, reply="The fee is 30 dollars. Apply online.")


def _annotation(body: str = "", exact: str = "30 dollars") -> str:
    return annotation_text(tag_names=["Factually incorrect"], body=body, exact=exact, replacement="",
                           is_suggestion=False, query="How much is the visa fee?", reply="The fee is 30 dollars.",
                           start=None, end=None)


def test_the_title_is_the_first_sentence_of_the_nearest_members_own_words():
    texts = [
        _event(),  # a bare thumbs down has no words of its own: the next member's comment names the problem
        _event("The visa fee quoted is out of date. It went up in April, the reply still says 30."),
        _event("Wrong fee again"),
    ]
    assert summaries.title(texts) == "The visa fee quoted is out of date."
    assert summaries.title([_annotation("the fee changed in april")]) == "The fee changed in april"


def test_without_any_words_the_title_says_the_signal_and_what_it_was_about():
    assert summaries.title([_event()]) == "Thumbs down on “How much is the visa fee for Japan?”"
    assert summaries.title([_annotation()]) == "Factually incorrect on “30 dollars”"
    assert summaries.title([]) == ""


def test_titles_are_trimmed_at_a_word_and_short_abbreviations_do_not_end_them():
    long = "The reply " + "keeps quoting the old visa fee " * 10
    title = summaries.title([long])
    assert len(title) <= summaries.TITLE_CHARS and title.endswith("…") and " " not in title[-3:]
    assert summaries.first_sentence("E.g. the fee. Then more.") == "E.g. the fee."
    assert summaries.first_sentence("Wrong!  Totally\nwrong. Next") == "Wrong! Totally wrong."


def test_snippets_are_distinct_nearest_first_trimmed_and_do_not_repeat_the_title():
    texts = [_event("Fee is wrong."), _event("fee is  WRONG"), _event("Quotes 30 dollars; it is 45 now."),
             _event(), _event("x" * 500), _event("Fifth")]
    snippets = summaries.snippets(texts, k=4)
    assert snippets == ["Fee is wrong.", "Quotes 30 dollars; it is 45 now.",
                        "Thumbs down on “How much is the visa fee for Japan?”", snippets[3]]
    assert len(snippets[3]) == summaries.SNIPPET_CHARS and snippets[3].endswith("…")
    # What the cluster stores: three, none merely repeating its title.
    assert summaries.snippets(texts, title=summaries.title(texts)) == snippets[1:4]


def test_corrections_are_named_as_such():
    assert summaries.gist(_event(correction="It is 45 dollars.")) == "User correction: It is 45 dollars."
    assert summaries.parts("plain text\nsecond line") == {"": "plain text second line"}
    assert summaries.plain(_event("Fee wrong")) == (
        "Wrong facts Fee wrong How much is the visa fee for Japan? The fee is 30 dollars. Apply online.")
