"""A seeded generator of native FeedbackHub JSONL (one conversation per line) with realistic sizes.

Sizes follow what production chat logs look like: about ten turns per conversation, user queries of one to a few
sentences, model replies of a few paragraphs, a system prompt and retrieved documents on most model turns, tool
calls on some, and end-user feedback (explicit and implicit) on a minority of replies. The same seed and count
always give the same file, and a file of N conversations is a prefix of a file of M > N conversations.

``python -m bench.datagen OUT.jsonl --count 1000 [--seed 7]`` writes a file by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

GENERATOR_VERSION = 1

DOMAINS = {
    "bank-support": {
        "system": (
            "You are the virtual assistant of Northbank's customer support. Answer questions about accounts, "
            "cards, transfers and fees using only the retrieved policy documents. Never ask for a full card number, "
            "PIN or password. If the customer reports fraud, give the 24/7 fraud line and explain how to freeze the "
            "card in the app. Keep answers short, friendly and precise; cite the document you used. If you are not "
            "sure, say so and offer to hand over to a human agent."
        ),
        "queries": [
            "How do I raise the daily limit on my debit card?",
            "I was charged a fee for an international transfer, why?",
            "My card was declined at a petrol station this morning even though I have money on the account.",
            "Can I open a joint savings account online or do I need to visit a branch?",
            "What is the interest rate on the fixed-term deposit for 12 months?",
            "I think someone used my card in another country, what should I do right now?",
            "How long does a SEPA transfer take to arrive?",
            "Where can I find my IBAN in the mobile app?",
            "Can you explain the overdraft fees on my last statement?",
            "I moved house, how do I update my address?",
        ],
        "docs": ["Card limits policy", "Fee schedule 2024", "Fraud and disputes", "Transfers FAQ", "Savings terms"],
        "tools": ["lookup_account_status", "freeze_card", "get_fee_schedule"],
    },
    "hr-assistant": {
        "system": (
            "You are the internal HR assistant of Acme Corp. Employees ask about leave, benefits, payroll, "
            "expenses and policies. Answer from the HR handbook excerpts provided in the context and link the "
            "relevant handbook section. Do not give legal advice. Do not disclose another employee's data. For "
            "questions about individual salaries or disciplinary matters, refer the employee to their HR partner."
        ),
        "queries": [
            "How many days of parental leave am I entitled to?",
            "Can I carry over unused holiday to next year?",
            "What is the process to claim travel expenses for a client visit?",
            "Is there a budget for training courses and how do I apply?",
            "How do I report working hours when I work from home?",
            "When is payroll processed this month, there is a bank holiday?",
            "What happens to my pension contributions if I go part-time?",
            "Can I switch my health insurance plan mid-year?",
            "Who do I contact about a problem with my manager?",
            "Do we get extra leave for moving house?",
        ],
        "docs": ["Leave policy", "Expenses handbook", "Benefits overview", "Payroll calendar", "Code of conduct"],
        "tools": ["get_leave_balance", "open_hr_ticket"],
    },
    "code-helper": {
        "system": (
            "You are a coding assistant embedded in the company IDE. Help with Python, TypeScript and SQL. Prefer "
            "small, idiomatic, tested code; explain trade-offs briefly; point out security issues such as SQL "
            "injection or unsafe deserialisation. When the user's code is shown in the context, refer to it by file "
            "and line. Do not invent APIs: if unsure whether a function exists, say so."
        ),
        "queries": [
            "Why does this Django query run once per row in my template?",
            "How do I stream a large CSV file to PostgreSQL without loading it into memory?",
            "Write a TypeScript type for an API response that can be either a list or an error.",
            "My pytest fixture runs for every test, how do I make it run once per session?",
            "What is the difference between a LEFT JOIN and a LATERAL join here?",
            "Explain why this async function never resolves.",
            "Refactor this function so it does not mutate its argument.",
            "How do I add a partial index in a Django migration?",
            "Is it safe to use pickle to cache these objects?",
            "Why does my regex match the whole line instead of the first word?",
        ],
        "docs": ["Django ORM guide", "PostgreSQL COPY", "pytest fixtures", "TypeScript handbook", "Team style guide"],
        "tools": ["run_tests", "search_codebase", "read_file"],
    },
    "travel-booking": {
        "system": (
            "You are the booking assistant of WanderAir. Help customers search flights, change or cancel bookings, "
            "add baggage and check travel requirements. Always confirm dates, airports and passenger names before "
            "calling a booking tool. Quote prices with currency and fare conditions. Visa and health requirements "
            "change often: give the official source and advise the customer to verify before travelling."
        ),
        "queries": [
            "I need to change my flight to Lisbon from Friday to Sunday.",
            "How much does an extra checked bag cost on the economy light fare?",
            "Do I need a visa to transit through Istanbul with a Moroccan passport?",
            "Can I get a refund if I cancel 48 hours before departure?",
            "Find me the cheapest flight from Berlin to Madrid next weekend.",
            "My flight was cancelled, what are my rights?",
            "Can I bring my cat in the cabin?",
            "I misspelled my surname on the booking, how do I fix it?",
            "Is there wifi on the long-haul flights?",
            "How early should I be at the airport for an international flight?",
        ],
        "docs": ["Fare conditions", "Baggage rules", "Passenger rights", "Travel requirements", "Pets on board"],
        "tools": ["search_flights", "change_booking", "get_baggage_price"],
    },
}

SENTENCES = [
    "Thanks for your question, here is what applies in your case.",
    "According to the policy document, the limit can be changed in the app under Settings, then Limits.",
    "The change takes effect immediately for card payments and within one business day for cash withdrawals.",
    "Please note that a fee may apply depending on your plan; the current fee schedule lists the exact amounts.",
    "If you did not authorise this transaction, freeze the card in the app first and then call the fraud line.",
    "You can find this information in the section of the handbook linked below.",
    "Here is a short example that shows the idea; adapt the names to your code base.",
    "The query runs once per row because the related objects are loaded lazily in the loop.",
    "Use select_related for foreign keys and prefetch_related for reverse relations to avoid that.",
    "Streaming the file in chunks keeps memory flat regardless of its size.",
    "I could not find a rule for this exact situation, so I would suggest asking a human agent.",
    "The refund is processed to the original payment method within seven to ten business days.",
    "For the transit, the official government website is the reliable source; requirements can change.",
    "Your remaining balance is shown at the top of the page, and the history below lists each entry.",
    "Let me know the booking reference and the new date, and I will check availability and the fare difference.",
    "In most cases the answer is yes, but there are two exceptions described in the fare conditions.",
    "To be precise, the rule counts calendar days rather than working days.",
    "The extra cost is charged per passenger and per direction.",
    "You can carry over up to five days; anything above that expires at the end of March.",
    "The form asks for the receipts as PDF or photo, the project code and your manager's approval.",
    "This pattern is safe as long as the input never comes from users; otherwise use parameters.",
    "A partial index only covers the rows that match its condition, so it stays small and fast.",
    "Pickle can execute arbitrary code when loading, so never unpickle data you did not write yourself.",
    "The greedy quantifier consumes as much as it can; make it lazy or anchor the word boundary.",
    "Consider adding a test that reproduces the problem before changing the code.",
    "I have summarised the three options below with their trade-offs.",
    "The first option is the simplest and covers most cases.",
    "The second option is faster but needs a migration and a short maintenance window.",
    "If you need this regularly, a scheduled job would save you the manual steps.",
    "Is there anything else I can help you with today?",
]
FOLLOW_UPS = [
    "Can you explain that in simpler terms?",
    "That did not work, the app shows an error.",
    "And what if I am abroad at the time?",
    "Thanks, can you give me the exact amount?",
    "Can you show the full code?",
    "Is that also true for part-time employees?",
    "Ok. What documents do I need?",
    "No, I meant the other account.",
    "Are you sure? The website says something different.",
    "Perfect, thank you!",
]
DOC_TEXT = [
    "Customers may change their daily card limit up to the maximum of their plan. Changes made in the app apply "
    "instantly to card payments. Cash withdrawal limits are updated overnight.",
    "International transfers outside the SEPA area are charged a flat fee plus the correspondent bank's charges, "
    "which are deducted from the amount received.",
    "Employees are entitled to 26 weeks of parental leave, of which the first 12 weeks are paid in full. Leave must "
    "be requested at least eight weeks in advance through the HR portal.",
    "Expenses must be submitted within 60 days with itemised receipts. Meals are reimbursed up to the daily "
    "allowance for the destination country.",
    "QuerySet.select_related follows foreign keys in the same query. prefetch_related does a separate lookup for "
    "each relationship and joins in Python.",
    "COPY moves data between PostgreSQL tables and standard file-system files. COPY FROM STDIN streams rows from "
    "the client without materialising them.",
    "Economy Light fares include one personal item. A checked bag of up to 23 kg can be added online until 24 hours "
    "before departure.",
    "Passengers whose flight is cancelled less than 14 days before departure are entitled to rerouting or a refund "
    "and, depending on distance, compensation.",
]
END_USER_ROLES = ["customer", "employee", "developer", "premium_customer", "guest", "agent"]
ENVIRONMENTS = ["prod"] * 7 + ["test"] * 2 + ["dev"]
MODEL_VERSIONS = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022", "llama-3.1-70b-instruct",
                  "mistral-large-2411", "internal-ft-2024-11"]
APP_VERSIONS = ["prompt-v12", "prompt-v13", "prompt-v14", "app-2.3.0", "app-2.4.1"]
NEGATIVE_CATEGORIES = ["factually incorrect", "too vague", "wrong tone", "incomplete", "misread intent",
                       "unsupported claim", "formatting"]
NEGATIVE_TEXT = [
    "This is wrong, the fee is different on my plan.",
    "Too generic, I asked about my specific case.",
    "It did not answer my question at all.",
    "The code does not compile.",
    "The link in the answer is broken.",
    "Way too long, I just needed the number.",
]
POSITIVE_TEXT = ["Exactly what I needed, thanks.", "Clear and quick.", "Helpful, the example worked."]
# Turns per conversation (user + assistant pairs, sometimes a tool turn); the mean is about ten.
PAIR_COUNTS = [1, 2, 3, 4, 5, 6, 7, 8]
PAIR_WEIGHTS = [6, 10, 13, 14, 14, 14, 14, 13]
START = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _reply(rng: random.Random) -> str:
    paragraphs = []
    for _ in range(rng.choice((1, 2, 2, 3, 3, 4))):
        paragraphs.append(" ".join(rng.choices(SENTENCES, k=rng.randint(2, 5))))
    return "\n\n".join(paragraphs)


def _feedback(rng: random.Random, at: dt.datetime, last: bool) -> list[dict]:
    events: list[dict] = []
    roll = rng.random()
    if roll < 0.08:
        events.append({"type": "thumbs_up", "created_at": _iso(at)} | (
            {"text": rng.choice(POSITIVE_TEXT)} if rng.random() < 0.3 else {}))
    elif roll < 0.13:
        event: dict = {"type": "thumbs_down", "created_at": _iso(at)}
        if rng.random() < 0.6:
            event["categories"] = rng.sample(NEGATIVE_CATEGORIES, k=rng.randint(1, 2))
        if rng.random() < 0.4:
            event["text"] = rng.choice(NEGATIVE_TEXT)
        events.append(event)
    elif roll < 0.16:
        events.append({"type": "rating", "rating": rng.randint(1, 5), "created_at": _iso(at)})
    if rng.random() < 0.02:
        events.append({"type": "correction", "correction": _reply(rng)[:400], "text": rng.choice(NEGATIVE_TEXT),
                       "created_at": _iso(at)})
    implicit = rng.random()
    if implicit < 0.06:
        events.append({"type": "copy", "created_at": _iso(at)})
    elif implicit < 0.10:
        events.append({"type": "regenerate", "created_at": _iso(at)})
    elif implicit < 0.13:
        events.append({"type": "rephrase", "created_at": _iso(at)})
    if last and rng.random() < 0.05:
        events.append({"type": "abandon", "created_at": _iso(at)})
    for index, event in enumerate(events):
        event["id"] = f"fb-{index}"
    return events


def conversation(rng: random.Random, index: int) -> dict:
    """One conversation record in the native format (deterministic for a given rng state)."""
    domain_name = rng.choice(list(DOMAINS))
    domain = DOMAINS[domain_name]
    model_version = rng.choice(MODEL_VERSIONS)
    started = START + dt.timedelta(seconds=index * 97 + rng.randint(0, 90))
    at = started
    turns: list[dict] = []
    pairs = rng.choices(PAIR_COUNTS, PAIR_WEIGHTS)[0]
    for pair in range(pairs):
        query = rng.choice(domain["queries"]) if pair == 0 else rng.choice(FOLLOW_UPS + domain["queries"])
        if rng.random() < 0.3:
            query += " " + rng.choice(SENTENCES)
        turns.append({"role": "user", "content": query, "created_at": _iso(at)})
        latency = rng.randint(350, 9000)
        at += dt.timedelta(milliseconds=latency)
        context: dict = {"system_prompt": domain["system"]}
        if rng.random() < 0.6:
            context["retrieved_documents"] = [
                {"id": f"doc-{rng.randint(1, 5000)}", "score": round(rng.uniform(0.35, 0.95), 3),
                 "title": rng.choice(domain["docs"]), "text": rng.choice(DOC_TEXT)}
                for _ in range(rng.randint(1, 3))
            ]
        tool_call = None
        if rng.random() < 0.12:
            tool_call = {"id": f"call-{index}-{pair}", "name": rng.choice(domain["tools"]),
                         "arguments": {"query": query[:60], "limit": rng.randint(1, 10)},
                         "result": {"status": "ok", "items": rng.randint(0, 5)}}
            context["tool_calls"] = [tool_call]
        reply = _reply(rng)
        prompt_tokens = len(domain["system"]) // 4 + sum(len(t["content"]) for t in turns) // 4
        turn = {
            "role": "assistant",
            "content": reply,
            "created_at": _iso(at),
            "latency_ms": latency,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(reply) // 4},
            "model_version": model_version,
            "confidence": round(rng.uniform(0.4, 0.99), 3),
            "context": context,
        }
        feedback = _feedback(rng, at + dt.timedelta(seconds=rng.randint(2, 60)), last=pair == pairs - 1)
        if feedback:
            turn["feedback"] = feedback
        turns.append(turn)
        if tool_call is not None and rng.random() < 0.5:
            turns.append({"role": "tool", "content": orjson.dumps(tool_call["result"]).decode(),
                          "created_at": _iso(at)})
        at += dt.timedelta(seconds=rng.randint(5, 120))
    return {
        "id": f"conv-{index:08d}",
        "user": {"id": "u-" + hashlib.blake2b(str(index % 25013).encode(), digest_size=6).hexdigest(),
                 "role": rng.choice(END_USER_ROLES)},
        "environment": rng.choice(ENVIRONMENTS),
        "model_version": model_version,
        "app_version": rng.choice(APP_VERSIONS),
        "started_at": _iso(started),
        "ended_at": _iso(at),
        "metadata": {"domain": domain_name, "locale": rng.choice(["en-GB", "en-US", "de-DE", "fr-FR"]),
                     "channel": rng.choice(["web", "ios", "android", "ide"])},
        "turns": turns,
    }


def conversations(count: int, seed: int = 7) -> Iterator[dict]:
    rng = random.Random(seed)
    for index in range(count):
        yield conversation(rng, index)


def write_jsonl(path: Path, count: int, seed: int = 7) -> dict:
    """Write ``count`` conversations to ``path``; returns {conversations, turns, feedback, bytes}."""
    turns = feedback = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb", buffering=1 << 20) as fh:
        for record in conversations(count, seed):
            turns += len(record["turns"])
            feedback += sum(len(t.get("feedback", ())) for t in record["turns"])
            fh.write(orjson.dumps(record))
            fh.write(b"\n")
    tmp.replace(path)
    return {"conversations": count, "turns": turns, "feedback": feedback, "bytes": path.stat().st_size}


def cached_file(work_dir: Path, count: int, seed: int = 7) -> tuple[Path, dict]:
    """The generated file for (count, seed), written once and reused by later runs."""
    path = work_dir / f"native-{count}-s{seed}-v{GENERATOR_VERSION}.jsonl"
    stats_path = path.with_suffix(".stats.json")
    if path.exists() and stats_path.exists():
        stats = orjson.loads(stats_path.read_bytes())
        if stats.get("bytes") == path.stat().st_size:
            return path, stats
    stats = write_jsonl(path, count, seed)
    stats_path.write_bytes(orjson.dumps(stats))
    return path, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    stats = write_jsonl(args.out, args.count, args.seed)
    print(orjson.dumps(stats).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
