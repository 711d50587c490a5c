"""POST /v1/traces: OpenTelemetry GenAI spans become conversations (the real SDK and its OTLP/HTTP exporter)."""

from __future__ import annotations

import gzip
import json

import pytest
from django.test import Client
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from feedbackhub import auth_tokens
from sessions.models import Conversation, Turn

URL = "/v1/traces"


def _messages(*messages: tuple[str, list[dict]]) -> str:
    return json.dumps([{"role": role, "parts": parts} for role, parts in messages])


def _text(text: str) -> list[dict]:
    return [{"type": "text", "content": text}]


def _chat(tracer, *, conversation: str, inputs: str, outputs: str, usage: tuple[int, int], finish: str) -> None:
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.conversation.id": conversation,
            "gen_ai.usage.input_tokens": usage[0],
            "gen_ai.usage.output_tokens": usage[1],
            "gen_ai.response.finish_reasons": [finish],
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a weather assistant."}]),
            "gen_ai.input.messages": inputs,
            "gen_ai.output.messages": outputs,
            "server.address": "api.openai.com",
        })


@pytest.mark.django_db(transaction=True)
def test_the_sdk_exporter_sends_a_two_turn_chat_with_a_tool_call(live_server):
    secret = auth_tokens.api_token_create(name="weather bot", scopes=["ingest"], sources=["weather"])[1]
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}/v1/traces",
                                headers={"Authorization": f"Bearer {secret}"}, compression=Compression.Gzip)
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-app", "service.version": "2.1",
                                                        "deployment.environment.name": "production"}))
    # One export per span as it ends: the conversation is put together over several requests.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("weather-app")
    user1 = ("user", _text("What's the weather in Paris?"))
    call = ("assistant", [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                           "arguments": {"city": "Paris"}}])
    result = ("tool", [{"type": "tool_call_response", "id": "call_1", "response": "sunny, 21 C"}])
    answer1 = ("assistant", _text("It is sunny and 21 C in Paris."))
    user2 = ("user", _text("And tomorrow?"))
    answer2 = ("assistant", _text("Rain is expected tomorrow."))
    with tracer.start_as_current_span("invoke_agent weather") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        _chat(tracer, conversation="conv-42", inputs=_messages(user1), outputs=_messages(call), usage=(20, 8),
              finish="tool_calls")
        with tracer.start_as_current_span("execute_tool get_weather") as tool:
            # No conversation id on the tool span: it joins the conversation of its trace.
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                                 "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                                 "gen_ai.tool.call.result": "sunny, 21 C"})
        _chat(tracer, conversation="conv-42", inputs=_messages(user1, call, result), outputs=_messages(answer1),
              usage=(41, 12), finish="stop")
        _chat(tracer, conversation="conv-42", inputs=_messages(user1, call, result, answer1, user2),
              outputs=_messages(answer2), usage=(60, 7), finish="stop")
    provider.shutdown()

    conversation = Conversation.objects.get()
    assert (conversation.source, conversation.external_id) == ("weather", "conv-42")
    assert conversation.model_version == "gpt-4o-2024-08-06"
    assert conversation.environment == "prod" and conversation.app_version == "2.1"
    turns = list(conversation.turns.order_by("position"))
    assert [(t.role, t.content) for t in turns] == [
        ("user", "What's the weather in Paris?"),
        ("assistant", ""),
        ("tool", "sunny, 21 C"),
        ("assistant", "It is sunny and 21 C in Paris."),
        ("user", "And tomorrow?"),
        ("assistant", "Rain is expected tomorrow."),
    ]
    first_reply, _, _, second_reply = turns[1], turns[2], turns[3], turns[5]
    assert first_reply.tool_calls == [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert (first_reply.prompt_tokens, first_reply.completion_tokens) == (20, 8)
    assert (second_reply.prompt_tokens, second_reply.completion_tokens) == (60, 7)
    assert second_reply.model_version == "gpt-4o-2024-08-06"
    assert second_reply.system_prompt == "You are a weather assistant."
    otel = second_reply.metadata["otel"]
    assert otel["provider"] == "openai" and otel["finish_reasons"] == ["stop"]
    assert otel["attributes"] == {"server.address": "api.openai.com"}  # unmapped attributes are kept
    assert conversation.metadata["otel"]["resource"]["service.name"] == "weather-app"


def _json_export(spans: list[dict]) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]}, "scopeSpans": [{"spans": spans}]}]}


def _span(span_id: str, conversation: str, reply: str, **attrs) -> dict:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": conversation,
                  "gen_ai.input.messages": _messages(("user", _text("Hi"))),
                  "gen_ai.output.messages": _messages(("assistant", _text(reply))), **attrs}
    return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001500000000",
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                           for k, v in attributes.items()]}


@pytest.fixture
def token(db) -> str:
    return auth_tokens.api_token_create(name="otel", scopes=["ingest"], sources=["svc"])[1]


def _post(body, token, content_type="application/json", **extra):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return Client().post(URL, data=data, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def test_otlp_json_with_hex_ids_and_latency(token):
    response = _post(_json_export([_span("eee19b7ec3c1b174", "c-1", "Hello!", **{"gen_ai.usage.input_tokens": 3})]),
                     token)
    assert response.status_code == 200, response.content
    assert response.json() == {}
    reply = Turn.objects.get(role="assistant")
    assert reply.content == "Hello!" and reply.latency_ms == 1500 and reply.prompt_tokens == 3
    assert reply.metadata["otel"]["span_id"] == "eee19b7ec3c1b174"


def test_the_same_spans_sent_twice_store_nothing_twice(token):
    body = gzip.compress(json.dumps(_json_export([_span("eee19b7ec3c1b174", "c-1", "Hello!")])).encode())
    for _ in range(2):
        assert _post(body, token, HTTP_CONTENT_ENCODING="gzip").status_code == 200
    assert Conversation.objects.count() == 1 and Turn.objects.count() == 2


def test_partial_success_counts_rejected_spans_and_ignores_other_spans(db):
    # A token of two sources: spans name theirs by service.name; a resource without one cannot be placed.
    secret = auth_tokens.api_token_create(name="two", scopes=["ingest"], sources=["svc", "other"])[1]
    other = {"traceId": "aa" * 16, "spanId": "bb" * 8, "name": "GET /", "attributes": []}
    export = _json_export([_span("dd" * 8, "c-1", "Fine."), other])
    export["resourceSpans"].append({"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        _span("cc" * 8, "c-2", "Lost.")]}]})
    answer = _post(export, secret).json()
    partial = answer["partialSuccess"]
    assert partial["rejectedSpans"] == 1
    assert "name no source" in partial["errorMessage"]
    assert "1 spans without gen_ai attributes were ignored" in partial["errorMessage"]
    assert list(Conversation.objects.values_list("source", "external_id")) == [("svc", "c-1")]


def test_protobuf_errors_answer_a_status_message(token):
    response = _post(b"\xff\xff not protobuf", token, content_type="application/x-protobuf")
    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert "ExportTraceServiceRequest" in status.message
    assert _post(b"x", token, content_type="text/plain").status_code == 415


def test_protobuf_success_is_an_export_response(token):
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes(16), b"\x01" * 8, "chat"
    span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
    span.attributes.add(key="gen_ai.conversation.id").value.string_value = "pb-1"
    response = _post(request.SerializeToString(), token, content_type="application/x-protobuf")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 0
    assert Conversation.objects.get().external_id == "pb-1"


def test_a_token_of_another_source_cannot_write_through_service_name(db):
    secret = auth_tokens.api_token_create(name="two", scopes=["ingest"], sources=["a", "b"])[1]
    response = _post(_json_export([_span("dd" * 8, "c-1", "Fine.")]), secret)
    assert response.status_code == 403
    assert not Conversation.objects.exists()


def _attrs(**attributes) -> list[dict]:
    return [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in attributes.items()]


def test_older_conventions_per_message_events_and_indexed_prompts(token):
    events_span = {
        "traceId": "11" * 16, "spanId": "a1" * 8, "name": "chat", "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000800000000",
        "attributes": _attrs(**{"gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo",
                                "session.id": "old-events", "gen_ai.usage.prompt_tokens": 9}),
        "events": [
            {"name": "gen_ai.system.message", "attributes": _attrs(content="Be brief.")},
            {"name": "gen_ai.user.message", "attributes": _attrs(content="Capital of France?")},
            {"name": "gen_ai.choice", "attributes": _attrs(**{
                "gen_ai.event.content": json.dumps({"index": 0, "finish_reason": "stop",
                                                     "message": {"content": "Paris."}})})},
        ],
    }
    indexed_span = {
        "traceId": "22" * 16, "spanId": "b2" * 8, "name": "openai.chat", "startTimeUnixNano": "1700000001000000000",
        "endTimeUnixNano": "1700000001500000000",
        "attributes": _attrs(**{"gen_ai.system": "openai", "gen_ai.conversation.id": "indexed",
                                "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Two plus two?",
                                "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Four."}),
    }
    assert _post(_json_export([events_span, indexed_span]), token).status_code == 200
    old = Conversation.objects.get(external_id="old-events")
    turns = list(old.turns.order_by("position"))
    assert [(t.role, t.content) for t in turns] == [("user", "Capital of France?"), ("assistant", "Paris.")]
    assert turns[1].system_prompt == "Be brief." and turns[1].prompt_tokens == 9
    assert turns[1].model_version == "gpt-3.5-turbo"
    indexed = Conversation.objects.get(external_id="indexed")
    assert list(indexed.turns.values_list("content", flat=True)) == ["Two plus two?", "Four."]


def test_a_span_out_of_order_rebuilds_the_conversation_in_time_order(token):
    late = _span("cc" * 8, "c-9", "Second answer.")
    late["startTimeUnixNano"], late["endTimeUnixNano"] = "1700000100000000000", "1700000101000000000"
    assert _post(_json_export([late]), token).status_code == 200
    early = _span("dd" * 8, "c-9", "First answer.")
    assert _post(_json_export([early]), token).status_code == 200
    replies = Turn.objects.filter(role="assistant").order_by("position").values_list("content", flat=True)
    assert list(replies) == ["First answer.", "Second answer."]


def test_a_model_call_arriving_after_the_next_one_adds_no_duplicate(token):
    """Two exports of one agent run processed in the wrong order: the answering call (whose input history holds the
    question and the tool call) first, then the call that asked for the tool."""
    question = ("user", _text("Weather in Oslo?"))
    call = ("assistant", [{"type": "tool_call", "id": "c-7", "name": "weather", "arguments": {"city": "Oslo"}}])
    result = ("tool", [{"type": "tool_call_response", "id": "c-7", "response": "snow"}])
    answer = ("assistant", _text("It is snowing in Oslo."))
    second = _span("ee" * 8, "oslo", "unused", **{"gen_ai.input.messages": _messages(question, call, result),
                                                   "gen_ai.output.messages": _messages(answer)})
    second["startTimeUnixNano"], second["endTimeUnixNano"] = "1700000010000000000", "1700000011000000000"
    first = _span("ff" * 8, "oslo", "unused", **{"gen_ai.input.messages": _messages(question),
                                                  "gen_ai.output.messages": _messages(call)})
    assert _post(_json_export([second]), token).status_code == 200
    assert _post(_json_export([first]), token).status_code == 200
    turns = list(Conversation.objects.get(external_id="oslo").turns.order_by("position"))
    assert [(t.role, t.content) for t in turns] == [
        ("user", "Weather in Oslo?"), ("assistant", ""), ("tool", "snow"), ("assistant", "It is snowing in Oslo.")]
