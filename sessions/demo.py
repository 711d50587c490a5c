"""A seeded generator of realistic demo conversations, written as native FeedbackHub JSONL and imported for real.

The demo set covers several product domains (a bank's customer support, an internal HR assistant, a coding helper,
a travel booking bot, an online shop's returns desk), several model and app versions, the three environments,
several end-user roles, multi-turn conversations with system prompts, retrieved documents with scores, tool calls,
latencies, token counts and confidence, and every kind of end-user feedback, including negative feedback with
reasons, free text and corrections.

Texts come from per-domain banks of scenarios (an opening question in a few wordings, a good answer and a weak one,
follow-ups, the knowledge-base articles a retriever would find, a tool call) with slots filled from small value
lists, so conversations read as real and still vary. Everything is drawn from ``random.Random(seed)`` and from a
fixed base date: the same seed always gives byte-identical JSONL. Conversation ids are ``demo-0001``..., so seeding
again (any seed) updates the demo set in place instead of adding to it; the import pipeline keeps it idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sessions.models import FeedbackKind

DEMO_SOURCE = "demo"
DEFAULT_COUNT = 300
DEFAULT_SEED = 2026
#: Conversations start within the 120 days after this date (fixed so that a seed always gives the same data).
BASE_DATE = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)

CATEGORIES = (
    "factually incorrect",
    "too vague",
    "wrong tone",
    "incomplete",
    "misread intent",
    "unsafe",
    "unsupported claim",
    "formatting",
)


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Tool:
    name: str
    arguments: dict
    result: dict


@dataclass(frozen=True)
class Scenario:
    topic: str
    openers: tuple[str, ...]
    good: str
    weak: str
    #: Why the weak answer is weak: feedback categories, an end user's complaint, and the user's own correction.
    problems: tuple[str, ...]
    complaints: tuple[str, ...]
    correction: str
    rephrase: str
    followups: tuple[tuple[str, str], ...] = ()
    docs: tuple[Doc, ...] = ()
    tool: Tool | None = None
    praise: tuple[str, ...] = ("Thanks, that's exactly what I needed.",)


@dataclass(frozen=True)
class Domain:
    key: str
    product: str
    system_prompt: str
    roles: tuple[tuple[str, int], ...]
    model_versions: tuple[str, ...]
    app_versions: tuple[str, ...]
    channels: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    scenarios: tuple[Scenario, ...]
    closings: tuple[tuple[str, str], ...] = field(default=())


# --- Domain banks ---------------------------------------------------------------------------------------------------

BANK = Domain(
    key="bank-support",
    product="Northwind Bank customer support",
    system_prompt=(
        "You are Northwind Bank's support assistant. Answer questions about the customer's own accounts and cards "
        "using only the retrieved policy articles and the account tools. Never ask for a full card number, PIN or "
        "one-time passcode. If a request needs identity verification or involves suspected fraud, hand over to a "
        "human agent. Be brief, friendly and precise; quote fees and limits exactly as the policy states them."
    ),
    roles=(("retail_customer", 6), ("premium_customer", 2), ("small_business", 2)),
    model_versions=("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022"),
    app_versions=("bank-assist 3.4.0", "bank-assist 3.5.1", "bank-assist 3.6.0-rc1"),
    channels=("mobile app", "web chat"),
    slots={
        "country": ("Portugal", "Japan", "Mexico", "Canada", "Morocco", "Italy"),
        "amount": ("€42.90", "€120.00", "€18.50", "€260.00", "€7.99"),
        "merchant": ("StreamBox", "CityFit Gym", "PixelPrint", "Green Grocer Online", "SkyRail Tickets"),
        "last4": ("4417", "0932", "7781", "5520", "3108"),
    },
    scenarios=(
        Scenario(
            topic="card declined abroad",
            openers=(
                "My card keeps getting declined in {country}, I'm standing at the checkout right now. What do I do?",
                "Why was my debit card ending {last4} declined at a shop in {country}?",
                "card not working in {country}?? it worked fine at home yesterday",
            ),
            good=(
                "Sorry about that. I checked your card ending {last4}: it is active, but the last attempt in "
                "{country} was declined because contactless payments abroad are capped at €50 per transaction "
                "until you use your PIN once there. Please insert the card and enter your PIN for this payment; "
                "after that contactless works normally. If it is still declined, tap Cards > Travel in the app to "
                "confirm the trip, or I can connect you to an agent."
            ),
            weak=(
                "Cards can be declined for many reasons, such as insufficient funds, security checks or merchant "
                "issues. Please contact your bank for more information."
            ),
            problems=("too vague", "misread intent"),
            complaints=(
                "I AM talking to my bank. This told me nothing.",
                "Generic answer, didn't look at my card at all.",
                "Useless while standing at a till.",
            ),
            correction=(
                "Your card is fine; contactless abroad is limited to €50 until you enter your PIN once in the "
                "country. Insert the card and use your PIN."
            ),
            rephrase="It says declined at the till in {country}. Is my card blocked or not?",
            followups=(
                (
                    "Do I need to tell you before I travel next time?",
                    "It's not required, but adding the trip under Cards > Travel avoids most fraud checks on the "
                    "first payments abroad. It takes a minute and you can add several countries at once.",
                ),
            ),
            docs=(
                Doc("kb-cards-112", "Using your card abroad",
                    "Contactless payments outside the EEA are limited to €50 per transaction until a chip-and-PIN "
                    "payment has been made in that country. Travel notices are optional."),
                Doc("kb-cards-087", "Why a card payment is declined",
                    "Common reasons: insufficient funds, a blocked card, a merchant category restriction, or a "
                    "security check on the first payment in a new country."),
            ),
            tool=Tool("get_card_status", {"card_last4": "{last4}"},
                      {"status": "active", "last_decline_reason": "contactless_limit_abroad", "country": "{country}"}),
        ),
        Scenario(
            topic="unrecognised charge",
            openers=(
                "There's a charge of {amount} from {merchant} I don't recognise. Is that fraud?",
                "I see {merchant} {amount} on my statement, never heard of them",
            ),
            good=(
                "I can see the {amount} payment to {merchant}. It is a recurring card payment set up on the same card "
                "three months ago, so it may be a subscription you signed up for (merchants sometimes bill under a "
                "different name). If you don't recognise it, I can block the card and open a dispute now; the "
                "amount is usually credited back provisionally within 5 business days. Shall I do that?"
            ),
            weak=(
                "That charge is definitely fraud. I have blocked your card and the money will be back in your "
                "account today."
            ),
            problems=("factually incorrect", "unsupported claim", "unsafe"),
            complaints=(
                "It blocked my card without asking! It was my gym membership.",
                "It said the money would be back today. That's not true, disputes take days.",
            ),
            correction=(
                "The charge is a recurring payment. Ask before blocking the card; a dispute credit usually takes up "
                "to 5 business days."
            ),
            rephrase="Can you just tell me what the {merchant} payment is before doing anything?",
            followups=(
                ("Oh wait, {merchant} is my gym. Never mind!",
                 "No problem, glad it's sorted. Nothing has been changed on your card."),
            ),
            docs=(
                Doc("kb-disputes-014", "Disputing a card payment",
                    "Customers can dispute a card payment within 120 days. A provisional credit is normally applied "
                    "within 5 business days while the merchant responds."),
                Doc("kb-fraud-002", "Suspected fraud",
                    "Never block a card without the customer's confirmation unless the fraud engine has already "
                    "flagged the card."),
            ),
            tool=Tool("list_transactions", {"merchant": "{merchant}", "days": 90},
                      {"count": 3, "recurring": True, "amount": "{amount}"}),
        ),
        Scenario(
            topic="transfer limit",
            openers=(
                "What's the maximum I can transfer to another bank in one day?",
                "I need to send €15,000 for a house deposit tomorrow, can I do it from the app?",
            ),
            good=(
                "From the app you can send up to €10,000 per day to other banks, or €25,000 if you approve the "
                "payment with your card reader. For a €15,000 house deposit, use the card reader option, or "
                "schedule two payments on consecutive days. Payments made before 16:00 on a business day arrive "
                "the same day."
            ),
            weak="You can transfer any amount you like from the app.",
            problems=("factually incorrect", "incomplete"),
            complaints=("Wrong, my transfer was rejected above 10k.",),
            correction="The app limit is €10,000 a day, or €25,000 with the card reader.",
            rephrase="Is there a daily limit for transfers in the app, yes or no?",
            docs=(
                Doc("kb-payments-031", "Payment limits",
                    "Online transfers to other banks: €10,000 per day; €25,000 per day when approved with the card "
                    "reader. Same-day arrival for payments before 16:00 on business days."),
            ),
        ),
        Scenario(
            topic="account closing fee",
            openers=(
                "How much does it cost to close my savings account?",
                "i want to close my account, are there fees",
            ),
            good=(
                "Closing a savings account is free. If it's a fixed-term deposit that hasn't matured yet, an "
                "early-withdrawal charge of 90 days' interest applies. Before we go ahead: are you closing "
                "because of something we could fix?"
            ),
            weak=(
                "We're really sad to see you go!!! 😢 Are you SURE? Our accounts are the best on the market and "
                "you would lose all your benefits."
            ),
            problems=("wrong tone", "misread intent", "incomplete"),
            complaints=("Pushy, and it never told me the fee.", "Just answer the question please."),
            correction="Closing is free; only fixed-term deposits closed early lose 90 days' interest.",
            rephrase="Just the fee for closing, please.",
            docs=(
                Doc("kb-accounts-009", "Closing an account",
                    "There is no fee to close a current or savings account. Fixed-term deposits withdrawn before "
                    "maturity lose 90 days of interest."),
            ),
        ),
    ),
    closings=(("Great, thanks!", "You're welcome. Is there anything else I can help with?"),),
)

HR = Domain(
    key="hr-assistant",
    product="PeopleDesk internal HR assistant",
    system_prompt=(
        "You are PeopleDesk, the internal HR assistant of Acme Robotics. Answer employees' questions from the "
        "retrieved HR policies only, and cite the policy name. For anything about an individual's pay, health or a "
        "complaint, direct the employee to their HR business partner. Use a warm, neutral tone. Policies differ "
        "by country: always check the employee's country before answering."
    ),
    roles=(("employee", 7), ("people_manager", 2), ("hr_partner", 1)),
    model_versions=("gpt-4o-mini-2024-07-18", "llama-3.1-70b-instruct", "mistral-large-2411"),
    app_versions=("peopledesk 1.12", "peopledesk 1.13", "peopledesk 2.0-beta"),
    channels=("Slack", "intranet"),
    slots={
        "office": ("Berlin", "Lyon", "Austin", "Pune", "Manchester"),
        "days": ("3", "5", "8", "10"),
        "month": ("August", "December", "March", "October"),
    },
    scenarios=(
        Scenario(
            topic="parental leave",
            openers=(
                "How much parental leave do I get? I'm based in the {office} office.",
                "My partner is expecting in {month}. What parental leave am I entitled to?",
            ),
            good=(
                "Congratulations! Under the Global Parental Leave policy, every employee gets 16 weeks of fully "
                "paid parental leave, regardless of gender, to be taken within the first year. In {office}, the "
                "statutory leave is added on top where it is longer. Let your manager know at least 8 weeks "
                "ahead and request it in Workday under Time Off > Parental Leave."
            ),
            weak="Parental leave is 2 weeks for fathers.",
            problems=("factually incorrect", "wrong tone", "unsupported claim"),
            complaints=(
                "That's not our policy, and why assume I'm a father?",
                "The policy says 16 weeks for everyone.",
            ),
            correction="All employees get 16 weeks of fully paid parental leave, taken within the first year.",
            rephrase="What does the Global Parental Leave policy say about the number of weeks?",
            followups=(
                ("Can I split it into two blocks?",
                 "Yes, it can be taken in up to two blocks, each at least 2 weeks long, within the first year."),
            ),
            docs=(
                Doc("hr-pol-021", "Global Parental Leave policy",
                    "All employees are entitled to 16 weeks of fully paid parental leave within 12 months of a "
                    "birth or adoption, in up to two blocks of at least two weeks."),
                Doc("hr-pol-021-de", "Parental leave: country supplements",
                    "Where statutory leave is longer than the global policy, the statutory entitlement applies."),
            ),
        ),
        Scenario(
            topic="carry over holidays",
            openers=(
                "I still have {days} days of holiday left. Can I carry them over to next year?",
                "what happens to my unused vacation days at the end of the year",
            ),
            good=(
                "You can carry over up to 5 unused days into the next year; they must be used by 31 March. Any "
                "days above 5 lapse unless your manager approved an exception because of business needs. With "
                "{days} days left, plan to book the extra ones before year end."
            ),
            weak="Unused days are paid out at the end of the year.",
            problems=("factually incorrect",),
            complaints=("We don't get paid out, they expire. I nearly lost days because of this.",),
            correction="Up to 5 days carry over (use them by 31 March); the rest lapse.",
            rephrase="How many holiday days can I move to next year?",
            docs=(
                Doc("hr-pol-004", "Annual leave",
                    "Up to five days of unused annual leave may be carried over and must be taken by 31 March. "
                    "Leave is not paid out except on termination where local law requires it."),
            ),
            tool=Tool("get_leave_balance", {"employee": "self"}, {"remaining_days": "{days}", "year": 2026}),
        ),
        Scenario(
            topic="expense claim",
            openers=(
                "How do I expense a client dinner?",
                "Is there a limit on meal expenses when travelling?",
            ),
            good=(
                "Submit it in Concur within 30 days with an itemised receipt and the names of the attendees. "
                "Client meals are reimbursed up to €80 per person including tip; alcohol is only reimbursed at "
                "client meals. Your manager approves it, then Finance pays it with the next payroll."
            ),
            weak="Just send the receipt to finance.",
            problems=("too vague", "incomplete"),
            complaints=("Send it where? What's the limit?", "Missing the per-person limit."),
            correction="Use Concur within 30 days, itemised receipt + attendees, max €80 per person.",
            rephrase="What's the per-person limit for a client dinner and where do I submit it?",
            docs=(
                Doc("fin-pol-010", "Travel and expenses",
                    "Meals with clients: up to €80 per person including tip. Claims in Concur within 30 days with "
                    "itemised receipts."),
            ),
        ),
        Scenario(
            topic="complaint about a manager",
            openers=(
                "My manager keeps making comments about my accent in meetings. Who can I talk to?",
                "I want to report something my manager said, confidentially.",
            ),
            good=(
                "I'm sorry this is happening; you don't have to deal with it alone. You can talk confidentially to "
                "your HR business partner, or use the Speak Up line (anonymous if you prefer, 24/7, by phone or "
                "web). Retaliation for raising a concern in good faith is prohibited under the Respect at Work "
                "policy. Would you like the contact details of your HR business partner?"
            ),
            weak=(
                "Have you considered that your manager might be joking? Try to talk to them directly first and "
                "see if it improves."
            ),
            problems=("wrong tone", "unsafe", "misread intent"),
            complaints=("This is exactly the wrong thing to say to someone reporting harassment.",),
            correction=(
                "Point to the HR business partner and the anonymous Speak Up line, and mention protection from "
                "retaliation."
            ),
            rephrase="How do I report harassment anonymously?",
            docs=(
                Doc("hr-pol-030", "Respect at Work policy",
                    "Concerns can be raised with an HR business partner or the Speak Up line. Retaliation against "
                    "anyone raising a concern in good faith is prohibited."),
            ),
        ),
    ),
    closings=(("Thanks, very helpful.", "Glad to help! You can find all policies on the intranet under HR."),),
)

CODING = Domain(
    key="coding-helper",
    product="DevPilot coding assistant",
    system_prompt=(
        "You are DevPilot, a coding assistant inside the company's IDE plugin. Give correct, minimal, idiomatic "
        "code with a one-paragraph explanation. Prefer the standard library. When you are not sure an API exists, "
        "say so. Format code in fenced blocks with the language name. Never output secrets from the context."
    ),
    roles=(("developer", 7), ("data_scientist", 2), ("sre", 1)),
    model_versions=("gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "qwen2.5-coder-32b-instruct"),
    app_versions=("devpilot-vscode 0.9.3", "devpilot-vscode 0.10.0", "devpilot-jetbrains 0.4.1"),
    channels=("VS Code", "JetBrains"),
    slots={
        "file": ("orders.csv", "events.jsonl", "users.csv", "metrics.json"),
        "column": ("created_at", "amount", "country", "status"),
    },
    scenarios=(
        Scenario(
            topic="read a large CSV",
            openers=(
                "How do I read {file} in Python without loading it all into memory? It's 8 GB.",
                "python: iterate over a huge {file} line by line and sum the {column} column",
            ),
            good=(
                "Use the csv module and iterate; it reads one row at a time:\n\n```python\nimport csv\n\n"
                "total = 0.0\nwith open(\"{file}\", newline=\"\", encoding=\"utf-8\") as fh:\n"
                "    for row in csv.DictReader(fh):\n        total += float(row[\"{column}\"])\nprint(total)\n```\n\n"
                "Memory stays flat because DictReader yields rows lazily. If you need pandas, pass "
                "`chunksize=100_000` to `read_csv` and aggregate per chunk."
            ),
            weak=(
                "```python\nimport pandas as pd\ndf = pd.read_csv(\"{file}\")\nprint(df[\"{column}\"].sum())\n```"
            ),
            problems=("misread intent", "incomplete"),
            complaints=("That loads the whole file, which is exactly what I said I can't do.",),
            correction="Iterate with csv.DictReader, or use pandas read_csv with chunksize.",
            rephrase="Without pandas loading the whole file, please. Streaming.",
            followups=(
                ("What if some rows have an empty {column}?",
                 "Skip them explicitly: `value = row[\"{column}\"]` then `if not value: continue` before converting. "
                 "Count the skipped rows so you notice if it's more than expected."),
            ),
            docs=(
                Doc("py-docs-csv", "csv — CSV File Reading and Writing",
                    "csv.DictReader(f) creates an object that operates like a regular reader but maps the "
                    "information in each row to a dict."),
            ),
        ),
        Scenario(
            topic="timezone-aware datetime",
            openers=(
                "How do I get the current time in UTC in Python? datetime.utcnow() is deprecated apparently",
                "convert a naive datetime from {file} to Europe/Paris time",
            ),
            good=(
                "Use an aware datetime:\n\n```python\nfrom datetime import datetime, UTC\nfrom zoneinfo import "
                "ZoneInfo\n\nnow = datetime.now(UTC)\nparis = now.astimezone(ZoneInfo(\"Europe/Paris\"))\n```\n\n"
                "`utcnow()` returns a naive datetime, which is why it is deprecated since Python 3.12. For a naive "
                "value you know is UTC, attach the zone first: `naive.replace(tzinfo=UTC)`."
            ),
            weak="Use `datetime.utcnow()`, it returns UTC time.",
            problems=("factually incorrect", "unsupported claim"),
            complaints=("That's the deprecated function I asked about.",),
            correction="datetime.now(UTC), then astimezone(ZoneInfo('Europe/Paris')).",
            rephrase="What replaces datetime.utcnow()?",
            docs=(
                Doc("py-docs-datetime", "datetime — Basic date and time types",
                    "Deprecated since version 3.12: use datetime.now(UTC) instead of utcnow()."),
            ),
        ),
        Scenario(
            topic="SQL injection",
            openers=(
                "Is this safe? cursor.execute(f\"SELECT * FROM users WHERE name = '{{name}}'\")",
                "how to pass a variable into a SQL query with psycopg",
            ),
            good=(
                "No, building SQL with an f-string allows SQL injection. Pass parameters separately and let the "
                "driver quote them:\n\n```python\ncur.execute(\"SELECT * FROM users WHERE name = %s\", [name])\n```\n\n"
                "For table or column names, which cannot be parameters, use `psycopg.sql.Identifier`."
            ),
            weak=(
                "It is safe as long as you escape quotes yourself: `name.replace(\"'\", \"''\")`."
            ),
            problems=("unsafe", "factually incorrect"),
            complaints=("Manual escaping is not safe. This is dangerous advice.",),
            correction="Never format SQL; use parameters: cur.execute('... WHERE name = %s', [name]).",
            rephrase="What's the correct way to do parameterised queries in psycopg?",
            docs=(
                Doc("psycopg-docs-params", "Passing parameters to SQL queries",
                    "Never, never, NEVER use Python string concatenation or string formatting to pass variables "
                    "to a SQL query string. Use placeholders and the second argument of execute()."),
            ),
        ),
        Scenario(
            topic="failing test in CI",
            openers=(
                "My test passes locally but fails in CI with `ModuleNotFoundError: No module named 'app'`. Why?",
                "pytest can't import my package in GitHub Actions",
            ),
            good=(
                "Locally you probably run pytest from the repository root, so the root is on `sys.path`; in CI the "
                "package isn't installed. Install it in the job (`pip install -e .`) or set `pythonpath = [\".\"]` "
                "under `[tool.pytest.ini_options]` in pyproject.toml. I checked the last run: the install step "
                "ran `pip install -r requirements.txt` only."
            ),
            weak="Try reinstalling Python.",
            problems=("too vague", "factually incorrect"),
            complaints=("Reinstalling Python?! Come on.",),
            correction="Install the package in CI (pip install -e .) or set pytest's pythonpath.",
            rephrase="CI only runs pip install -r requirements.txt, is that the problem?",
            tool=Tool("get_ci_run", {"run_id": 48213}, {"status": "failed", "step": "pytest",
                                                         "install_command": "pip install -r requirements.txt"}),
        ),
    ),
    closings=(("Works now, thanks", "Great. Happy coding!"),),
)

TRAVEL = Domain(
    key="travel-booking",
    product="Wayfarer travel booking bot",
    system_prompt=(
        "You are Wayfarer's booking assistant. Help travellers search, book and change flights and hotels using the "
        "booking tools. Always state prices with currency and what is included. Do not confirm a booking or a "
        "change before the tool returns a confirmation code. Fare rules come from the retrieved fare conditions."
    ),
    roles=(("traveller", 6), ("travel_agent", 2), ("corporate_booker", 2)),
    model_versions=("gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022", "gemini-1.5-pro-002"),
    app_versions=("wayfarer-web 5.2", "wayfarer-web 5.3", "wayfarer-ios 7.0"),
    channels=("website", "iOS app", "WhatsApp"),
    slots={
        "origin": ("Lisbon", "Amsterdam", "Madrid", "Dublin", "Vienna"),
        "destination": ("Reykjavik", "Athens", "Marrakesh", "Copenhagen", "Tallinn"),
        "date": ("12 July", "3 August", "21 September", "5 October"),
        "price": ("€189", "€246", "€312", "€158"),
        "ref": ("WFX7Q2", "WFK93D", "WFA1ZP", "WFM4TT"),
    },
    scenarios=(
        Scenario(
            topic="find a flight",
            openers=(
                "Find me a flight from {origin} to {destination} on {date}, morning if possible.",
                "cheapest {origin} -> {destination} {date}?",
            ),
            good=(
                "The best morning option on {date}: departs {origin} 07:40, arrives {destination} 12:15 (one stop, "
                "1 h 10 min connection), {price} return in Economy Light, cabin bag included, checked bag €35 "
                "each way. A nonstop leaves at 10:05 for €70 more. Shall I hold the 07:40 fare for 24 hours?"
            ),
            weak="There are many flights available. Prices vary.",
            problems=("too vague", "incomplete"),
            complaints=("It didn't actually search.", "No times, no price. Useless."),
            correction="Show the actual options with times, price and baggage included.",
            rephrase="Can you search flights {origin} to {destination} on {date} and show times and prices?",
            tool=Tool("search_flights", {"from": "{origin}", "to": "{destination}", "date": "{date}"},
                      {"results": 14, "best": {"dep": "07:40", "arr": "12:15", "stops": 1, "price": "{price}"}}),
            followups=(
                ("Is the checked bag included on the nonstop?",
                 "No, the nonstop is also Economy Light: cabin bag only. A checked bag is €35 each way, or choose "
                 "Economy Classic (+€48) which includes one 23 kg bag."),
            ),
        ),
        Scenario(
            topic="change a booking",
            openers=(
                "I need to move booking {ref} one day later. How much will that cost?",
                "can i change the date on {ref}",
            ),
            good=(
                "Booking {ref} is an Economy Classic fare, so date changes are free; you only pay any fare "
                "difference. Moving it one day later costs €24 more. I have not changed anything yet: shall I "
                "go ahead?"
            ),
            weak="Done! I've moved your flight to the next day. Have a nice trip!",
            problems=("unsafe", "unsupported claim", "misread intent"),
            complaints=(
                "It said done but nothing changed in my booking, and I only asked about the cost!",
                "Never confirmed anything and didn't say the price.",
            ),
            correction="Quote the change fee and fare difference first, and only change after I confirm.",
            rephrase="Don't change anything yet, what would it cost to move {ref}?",
            docs=(
                Doc("fare-econ-classic", "Fare conditions: Economy Classic",
                    "Changes: permitted free of charge up to 24 hours before departure; fare difference applies. "
                    "Refund: not permitted, taxes refundable."),
            ),
            tool=Tool("quote_change", {"booking_ref": "{ref}", "shift_days": 1},
                      {"change_fee": 0, "fare_difference": "€24", "currency": "EUR"}),
        ),
        Scenario(
            topic="visa question",
            openers=(
                "Do I need a visa to go to {destination} with an Irish passport?",
                "visa for {destination}?",
            ),
            good=(
                "I can't give a definitive answer on entry requirements; they depend on your nationality and "
                "change often. The official source is the destination's government travel site, and IATA's Timatic "
                "is what airlines check at boarding. Would you like the link for {destination}?"
            ),
            weak="No visa needed, just go!",
            problems=("unsupported claim", "unsafe"),
            complaints=("It can't know that for sure. I could be refused boarding.",),
            correction="Say it can't confirm visa rules and point to the official government source.",
            rephrase="Where can I check visa rules officially?",
        ),
        Scenario(
            topic="hotel cancellation",
            openers=(
                "Can I cancel the hotel in {destination} for free?",
                "what's the cancellation policy on my hotel booking {ref}",
            ),
            good=(
                "Your hotel in {destination} (booking {ref}) is on a flexible rate: free cancellation until "
                "18:00 local time two days before arrival; after that the first night is charged ({price}). "
                "Want me to cancel it?"
            ),
            weak="Hotel cancellations are always free on Wayfarer.",
            problems=("factually incorrect",),
            complaints=("Not true, I was charged for the first night last time.",),
            correction="Free until 18:00 two days before arrival, then the first night is charged.",
            rephrase="Until when can I cancel {ref} without paying?",
            tool=Tool("get_booking", {"booking_ref": "{ref}"},
                      {"type": "hotel", "rate": "flexible", "free_cancel_until": "D-2 18:00"}),
        ),
    ),
    closings=(("Perfect, thanks", "Enjoy {destination}! I'm here if plans change."),),
)

RETAIL = Domain(
    key="shop-returns",
    product="Brightcart online shop returns desk",
    system_prompt=(
        "You are Brightcart's returns assistant. Explain the returns policy, start returns with the order tools, "
        "and never promise refunds before the returned item is received. Keep answers under 80 words."
    ),
    roles=(("shopper", 8), ("marketplace_seller", 2)),
    model_versions=("gpt-4o-mini-2024-07-18", "llama-3.1-8b-instruct"),
    app_versions=("returns-bot 2.1", "returns-bot 2.2"),
    channels=("web chat", "Android app"),
    slots={
        "item": ("wireless headphones", "running shoes", "a winter coat", "a coffee grinder", "a phone case"),
        "order": ("BC-550128", "BC-551902", "BC-548337", "BC-552410"),
        "days": ("12", "25", "40"),
    },
    scenarios=(
        Scenario(
            topic="return window",
            openers=(
                "I bought {item} {days} days ago, can I still return it?",
                "return {item} from order {order}",
            ),
            good=(
                "Most items can be returned within 30 days of delivery. Order {order} was delivered {days} days "
                "ago, so {item} can be returned if you're within that window; I can create a free return label now. "
                "The refund goes to your original payment method within 5 days of us receiving it."
            ),
            weak="Yes you can return it whenever you want, refund is immediate.",
            problems=("factually incorrect", "unsupported claim"),
            complaints=("Not whenever; it's 30 days. And refunds aren't immediate.",),
            correction="30-day window from delivery; refund within 5 days after the item arrives.",
            rephrase="What's the return window for {item}?",
            tool=Tool("get_order", {"order_id": "{order}"}, {"delivered_days_ago": "{days}", "returnable": True}),
            docs=(
                Doc("ret-pol-01", "Returns policy",
                    "Items can be returned within 30 days of delivery. Refunds are issued within 5 days of "
                    "receiving the return."),
            ),
        ),
        Scenario(
            topic="damaged item",
            openers=(
                "My {item} arrived broken. What now?",
                "the {item} in {order} is damaged, the box was crushed",
            ),
            good=(
                "I'm sorry it arrived damaged. Please upload a photo of the item and the box here; I'll then "
                "send a replacement straight away, or a refund if you prefer, and you don't need to send the broken "
                "{item} back."
            ),
            weak="Please read our returns policy on the website.",
            problems=("too vague", "wrong tone"),
            complaints=("Cold and unhelpful, it's not my fault it broke.",),
            correction="Apologise, ask for a photo, offer a replacement or refund without a return.",
            rephrase="Can you send me a replacement for the broken {item}?",
            docs=(
                Doc("ret-pol-04", "Damaged or faulty items",
                    "For items damaged in transit, request a photo; offer replacement or refund; no return needed."),
            ),
        ),
    ),
    closings=(("ok thanks", "You're welcome!"),),
)

DOMAINS: tuple[Domain, ...] = (BANK, HR, CODING, TRAVEL, RETAIL)
DOMAIN_WEIGHTS = (3, 2, 3, 3, 1)
ENVIRONMENTS = (("prod", 7), ("test", 2), ("dev", 1))


# --- Generation -----------------------------------------------------------------------------------------------------


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _filler(slots: dict[str, str]) -> Callable[[str], str]:
    def fill(text: str) -> str:
        return text.format(**slots)

    return fill


def _fill_obj(value: Any, fill: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fill(value)
    if isinstance(value, dict):
        return {k: _fill_obj(v, fill) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill_obj(v, fill) for v in value]
    return value


def _tokens(*texts: str) -> int:
    # Roughly four characters per token, as a tokenizer would count English prose.
    return max(1, sum(len(t) for t in texts) // 4)


class _Builder:
    """Builds one conversation: turns are appended in order, with timestamps that move forward."""

    def __init__(self, rng: random.Random, conv_id: str, domain: Domain, model_version: str, start: dt.datetime):
        self.rng = rng
        self.conv_id = conv_id
        self.domain = domain
        self.model_version = model_version
        self.clock = start
        self.turns: list[dict] = []
        self.history_chars = len(domain.system_prompt)

    def _tick(self, low: float, high: float) -> dt.datetime:
        self.clock += dt.timedelta(seconds=round(self.rng.uniform(low, high), 3))
        return self.clock

    def user(self, text: str) -> dict:
        turn = {"role": "user", "content": text, "created_at": _iso(self._tick(4, 90))}
        self.turns.append(turn)
        self.history_chars += len(text)
        return turn

    def assistant(self, text: str, *, weak: bool, docs: tuple[Doc, ...] = (), tool: dict | None = None) -> dict:
        rng = self.rng
        latency = int(rng.lognormvariate(7.3, 0.45)) + (900 if tool else 0) + (250 * len(docs))
        self._tick(latency / 1000, latency / 1000 + 0.5)
        context: dict[str, Any] = {"system_prompt": self.domain.system_prompt}
        if docs:
            scores = sorted((round(rng.uniform(0.55, 0.93), 3) for _ in docs), reverse=True)
            context["retrieved_documents"] = [
                {"id": d.id, "score": s, "title": d.title, "text": d.text} for d, s in zip(docs, scores, strict=True)
            ]
        if tool:
            context["tool_calls"] = [tool]
        doc_chars = sum(len(d.text) + len(d.title) for d in docs)
        confidence = rng.uniform(0.32, 0.66) if weak else rng.uniform(0.71, 0.98)
        turn = {
            "role": "assistant",
            "content": text,
            "created_at": _iso(self.clock),
            "latency_ms": latency,
            "usage": {"prompt_tokens": _tokens("x" * (self.history_chars + doc_chars)),
                      "completion_tokens": _tokens(text)},
            "model_version": self.model_version,
            "confidence": round(confidence, 3),
            "context": context,
            "feedback": [],
        }
        self.turns.append(turn)
        self.history_chars += len(text)
        return turn

    def feedback(self, turn: dict, kind: str, **values: Any) -> None:
        n = len(turn["feedback"])
        position = self.turns.index(turn)
        event: dict[str, Any] = {
            "id": f"{self.conv_id}-t{position}-f{n}",
            "type": kind,
            "created_at": _iso(self.clock + dt.timedelta(seconds=round(self.rng.uniform(2, 40), 3))),
        }
        # Only the fields this kind of event carries, as a real client would log them.
        event.update({k: v for k, v in values.items() if v not in (None, "", [])})
        turn["feedback"].append(event)


def _negative_feedback(b: _Builder, turn: dict, sc: Scenario, fill: Callable[[str], str], forced: str | None) -> str:
    """Attach negative feedback to a weak answer; return what the user does next ('rephrase', 'regenerate'...)."""
    rng = b.rng
    kinds = [FeedbackKind.THUMBS_DOWN, FeedbackKind.CATEGORY, FeedbackKind.COMMENT, FeedbackKind.CORRECTION,
             FeedbackKind.RATING]
    chosen = {forced} if forced in kinds else set(rng.sample(kinds, rng.randint(1, 3)))
    categories = sorted(rng.sample(sc.problems, rng.randint(1, len(sc.problems))))
    for kind in kinds:
        if kind not in chosen:
            continue
        if kind == FeedbackKind.THUMBS_DOWN:
            b.feedback(turn, kind, categories=categories if rng.random() < 0.6 else [],
                       text=fill(rng.choice(sc.complaints)) if rng.random() < 0.4 else "")
        elif kind == FeedbackKind.CATEGORY:
            b.feedback(turn, kind, categories=categories)
        elif kind == FeedbackKind.COMMENT:
            b.feedback(turn, kind, text=fill(rng.choice(sc.complaints)))
        elif kind == FeedbackKind.CORRECTION:
            b.feedback(turn, kind, correction=fill(sc.correction),
                       text="This is what it should have said." if rng.random() < 0.3 else "")
        elif kind == FeedbackKind.RATING:
            b.feedback(turn, kind, rating=rng.randint(1, 2), categories=categories[:1])
    if forced in {FeedbackKind.REPHRASE, FeedbackKind.REGENERATE, FeedbackKind.ABANDON}:
        return forced
    return rng.choices(["rephrase", "regenerate", "abandon", "continue"], weights=[4, 3, 2, 3])[0]


def _positive_feedback(b: _Builder, turn: dict, sc: Scenario, fill: Callable[[str], str], forced: str | None) -> None:
    rng = b.rng
    roll = rng.random()
    if forced == FeedbackKind.THUMBS_UP or (forced is None and roll < 0.22):
        b.feedback(turn, FeedbackKind.THUMBS_UP, text=fill(rng.choice(sc.praise)) if rng.random() < 0.2 else "")
    elif forced == FeedbackKind.RATING or (forced is None and roll < 0.34):
        b.feedback(turn, FeedbackKind.RATING, rating=rng.choice((4, 5, 5)))
    elif forced == FeedbackKind.COPY or (forced is None and roll < 0.46):
        b.feedback(turn, FeedbackKind.COPY)
    elif forced == FeedbackKind.COMMENT:
        b.feedback(turn, FeedbackKind.COMMENT, text=fill(rng.choice(sc.praise)))


def _conversation(rng: random.Random, index: int, forced: str | None) -> dict:
    domain = rng.choices(DOMAINS, weights=DOMAIN_WEIGHTS)[0]
    sc = rng.choice(domain.scenarios)
    slots = {name: rng.choice(values) for name, values in domain.slots.items()}
    fill = _filler(slots)
    conv_id = f"demo-{index:04d}"
    model_version = rng.choice(domain.model_versions)
    start = BASE_DATE + dt.timedelta(days=rng.randint(0, 119), seconds=rng.randint(0, 50_400))
    b = _Builder(rng, conv_id, domain, model_version, start)

    negative_kinds = {FeedbackKind.THUMBS_DOWN, FeedbackKind.CATEGORY, FeedbackKind.CORRECTION,
                      FeedbackKind.REPHRASE, FeedbackKind.REGENERATE, FeedbackKind.ABANDON}
    weak = forced in negative_kinds or (forced is None and rng.random() < 0.3)
    tool = _fill_obj({"id": f"call_{rng.getrandbits(40):010x}", "name": sc.tool.name,
                      "arguments": sc.tool.arguments, "result": sc.tool.result}, fill) if sc.tool else None
    docs = tuple(rng.sample(sc.docs, rng.randint(1, len(sc.docs)))) if sc.docs else ()
    if docs:
        docs = tuple(Doc(d.id, d.title, fill(d.text)) for d in docs)

    b.user(fill(rng.choice(sc.openers)))
    first = b.assistant(fill(sc.weak if weak else sc.good), weak=weak, docs=docs, tool=tool)
    abandoned = False
    if weak:
        next_step = _negative_feedback(b, first, sc, fill, forced)
        if next_step == "rephrase":
            b.feedback(first, FeedbackKind.REPHRASE)
            b.user(fill(sc.rephrase))
            answer = b.assistant(fill(sc.good), weak=False, docs=docs, tool=tool)
            _positive_feedback(b, answer, sc, fill, None)
        elif next_step == "regenerate":
            b.feedback(first, FeedbackKind.REGENERATE)
            # The regenerated answer is logged as a new assistant turn answering the same question.
            answer = b.assistant(fill(sc.good), weak=False, docs=docs, tool=tool)
            _positive_feedback(b, answer, sc, fill, None)
        elif next_step == "abandon":
            b.feedback(first, FeedbackKind.ABANDON)
            abandoned = True
    else:
        _positive_feedback(b, first, sc, fill, forced)

    if not abandoned:
        for question, answer_text in sc.followups:
            if rng.random() < 0.55:
                b.user(fill(question))
                reply = b.assistant(fill(answer_text), weak=False, docs=docs[:1])
                _positive_feedback(b, reply, sc, fill, None)
        if domain.closings and rng.random() < 0.4:
            question, answer_text = rng.choice(domain.closings)
            b.user(fill(question))
            b.assistant(fill(answer_text), weak=False)

    user_role = _weighted(rng, domain.roles)
    return {
        "id": conv_id,
        "user": {"id": f"u-{rng.getrandbits(32):08x}", "role": user_role},
        "environment": _weighted(rng, ENVIRONMENTS),
        "model_version": model_version,
        "app_version": rng.choice(domain.app_versions),
        "started_at": _iso(start),
        "ended_at": _iso(b.clock + dt.timedelta(seconds=rng.randint(5, 120))),
        "metadata": {
            "domain": domain.key,
            "product": domain.product,
            "topic": sc.topic,
            "channel": rng.choice(domain.channels),
            "locale": rng.choice(("en-GB", "en-US", "en-IE", "en-IN")),
        },
        "turns": b.turns,
    }


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> Iterator[dict]:
    """Yield ``count`` native-format conversation records, the same ones for the same ``seed``.

    The first conversations each force one feedback kind, so every kind appears even in a small set.
    """
    rng = random.Random(seed)  # noqa: S311  (reproducible demo data, not security)
    forced_kinds = list(FeedbackKind)
    for index in range(1, count + 1):
        forced = forced_kinds[index - 1] if index <= len(forced_kinds) else None
        yield _conversation(rng, index, forced)


def write_jsonl(out: IO[str], *, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> int:
    """Write the demo set as native JSONL to ``out``; return the number of conversations written."""
    written = 0
    for record in generate(count, seed):
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True))
        out.write("\n")
        written += 1
    return written


def demo_seed(*, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED, user=None, progress=None):
    """Generate the demo set and import it through the real import pipeline (source ``demo``); return the batch."""
    from sessions.services import import_file  # noqa: PLC0415  (the pipeline imports models; keep this module light)

    with tempfile.TemporaryDirectory(prefix="feedbackhub-demo-") as folder:
        path = Path(folder) / f"demo-seed{seed}-{count}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            write_jsonl(fh, count=count, seed=seed)
        return import_file(path=path, source=DEMO_SOURCE, format="native", user=user, progress=progress)
