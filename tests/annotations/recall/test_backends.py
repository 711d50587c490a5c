"""Embedding backends (torch fp32, ONNX int8) and the recall API's hot path: model identities name their backend,
vectors of two backends are never mixed, the ONNX export is made once and agrees with fp32, and the API answers
from cached token and model look-ups in a fixed handful of queries."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotations.recall import api as recall_api
from annotations.recall import querying, selectors
from annotations.recall.models import Embedding
from feedbackhub import auth_tokens, embedding_export, embedding_onnx, embeddings
from tests.annotations.recall.recall_cases import REFUND_QUERY, build_cases

INT8 = f"{embeddings.DEFAULT_MODEL}@{embeddings.ONNX_INT8}"
TEXTS = [
    "The card was blocked after three wrong PIN attempts.",
    "My card got blocked, what do I do?",
    "The assistant quoted a refund window of 60 days; the policy says 30 days for annual plans.",
    "Best pasta recipe with fresh tomatoes",
]


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Process caches of the hot path (token rows, active model name) must not outlive a test's data.
    recall_api.clear_caches()
    auth_tokens.clear_token_cache()
    yield
    recall_api.clear_caches()
    auth_tokens.clear_token_cache()


def test_identity_names_the_backend_unless_it_is_torch(settings):
    assert embeddings.identity("all-MiniLM-L6-v2", "torch") == "all-MiniLM-L6-v2"
    assert embeddings.identity("all-MiniLM-L6-v2", "onnx-int8") == INT8
    assert embeddings.split_identity(INT8) == ("all-MiniLM-L6-v2", "onnx-int8")
    # An @ that is not a backend belongs to the name (a local folder may contain one).
    assert embeddings.split_identity("/models/team@v2") == ("/models/team@v2", "torch")
    settings.EMBEDDING_BACKEND = "onnx-int8"
    assert embeddings.model_name() == INT8
    settings.EMBEDDING_BACKEND = "torch"
    assert embeddings.model_name() == "all-MiniLM-L6-v2"
    settings.EMBEDDING_BACKEND = "tensorflow"
    with pytest.raises(ValueError, match="EMBEDDING_BACKEND"):
        embeddings.model_name()


def test_onnx_int8_is_exported_once_and_agrees_with_fp32(model):
    encoder = embeddings.get_model(INT8)
    assert isinstance(encoder, embedding_onnx.OnnxEncoder) and embeddings.get_model(INT8) is encoder
    folder = embedding_onnx.export_onnx(embeddings.DEFAULT_MODEL, quantized=True)
    exported = (folder / "model_int8.onnx").stat().st_mtime_ns
    assert embedding_onnx.export_onnx(embeddings.DEFAULT_MODEL, quantized=True) == folder
    assert (folder / "model_int8.onnx").stat().st_mtime_ns == exported  # reused, not exported again

    fp32 = embeddings.encode(TEXTS)
    int8 = embeddings.encode(TEXTS, name=INT8)
    assert int8.shape == (4, 384) and int8.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-4)
    cosine = (fp32 * int8).sum(axis=1)
    assert cosine.min() > 0.97 and cosine.mean() >= 0.98
    # Close to fp32, yet not the same vectors: that is why they are stored under another name.
    assert not np.allclose(fp32, int8, atol=1e-4)
    # Same neighbours: the blocked-card texts stay closest to each other.
    assert int8[0] @ int8[1] > int8[0] @ int8[3] + 0.3
    assert embeddings.encode([], name=INT8).shape == (0, 384)


def test_queries_for_torch_vectors_run_on_the_fp32_onnx_export_unless_told_otherwise(settings):
    assert embeddings.query_identity("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2@onnx"
    # Vectors of an ONNX backend are queried by that same backend.
    assert embeddings.query_identity(INT8) == INT8
    settings.RECALL_QUERY_ENCODER = "model"
    assert embeddings.query_identity("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    settings.RECALL_QUERY_ENCODER = "openvino"
    with pytest.raises(ValueError, match="RECALL_QUERY_ENCODER"):
        embeddings.query_identity("all-MiniLM-L6-v2")


QUERY_TEXTS = [
    *TEXTS,
    "x",
    "Pourquoi ma carte est-elle bloquée ? 🙁 👩‍👩‍👧 e\u0301te\u0301",
    "银行卡被冻结了怎么办",
    " ".join(["The reply cited a policy that does not exist."] * 60),  # past the model's 256 tokens: truncated
]


def test_the_query_encoder_makes_the_same_vectors_as_torch(model):
    torch_vectors = embeddings.encode(QUERY_TEXTS)
    one_by_one = np.vstack([querying.embed_query(t, model="all-MiniLM-L6-v2") for t in QUERY_TEXTS])
    assert embeddings.is_loaded("all-MiniLM-L6-v2@onnx")
    assert one_by_one.shape == (len(QUERY_TEXTS), 384) and one_by_one.dtype == np.float32
    # The same weights in the same precision: equal up to float rounding, far closer than halfvec storage keeps.
    assert (torch_vectors * one_by_one).sum(axis=1).min() > 0.99999
    assert np.abs(torch_vectors - one_by_one).max() < 1e-3


def test_the_fp32_export_is_the_fused_graph(model):
    import onnx

    folder = embedding_onnx.export_onnx(embeddings.DEFAULT_MODEL, quantized=False)
    ops = {node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node}
    # One operator per attention block, per residual + layer norm, per bias + GELU: what makes one query faster.
    assert {"Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"} <= ops
    assert "Softmax" not in ops


def test_a_new_export_drops_older_exports_of_the_same_weights_only(tmp_path):
    def export(name: str, source: str):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "encoder.json").write_text(json.dumps({"source": source}))
        (folder / "model.onnx").write_bytes(b"x")
        (tmp_path / f"{name}.lock").touch()
        return folder

    old = export("model-old", "/weights/minilm")
    other = export("model-other", "/weights/another-model")
    unreadable = tmp_path / "model-unknown"
    unreadable.mkdir()
    current = export("model-new", "/weights/minilm")
    embedding_export._drop_older_exports(current, source="/weights/minilm")
    assert not old.exists() and not (tmp_path / "model-old.lock").exists()
    assert current.is_dir() and other.is_dir() and unreadable.is_dir()


def _tiny_model(path, constant: float) -> None:
    """A model adding ``constant`` to its input: stands in for an export and its fused graph."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor("c", TensorProto.FLOAT, [1], [constant])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("optimiser", ["disagrees", "fails"])
def test_a_fused_graph_is_used_only_when_it_agrees_with_the_plain_export(tmp_path, monkeypatch, optimiser):
    plain, fused = tmp_path / "plain.onnx", tmp_path / "model.onnx"
    _tiny_model(plain, 1.0)

    class Wrong:
        def save_model_to_file(self, path):
            _tiny_model(path, 1.5)  # off by 0.5: far past the tolerance

    def optimise(*args, **kwargs):
        if optimiser == "fails":
            raise RuntimeError("no pattern")
        return Wrong()

    monkeypatch.setattr(embedding_export, "optimize_model", optimise)
    embedding_export._fuse(plain, fused, heads=1, hidden=2, feeds={"x": np.zeros((1, 2), dtype=np.float32)})
    assert fused.read_bytes() == plain.read_bytes()


@pytest.fixture
def cases(moderator, expert):
    return build_cases(moderator, expert)


def _post(client: Client, token: str, body: dict):
    return client.post("/api/v1/recall", json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.django_db
def test_the_query_is_embedded_by_the_active_models_backend_even_right_after_a_switch(cases):
    token = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["recall-tests"], gate="approved")[1]
    client = Client()
    before = _post(client, token, {"input": REFUND_QUERY, "k": 1}).json()
    assert before["model"] == "all-MiniLM-L6-v2"  # and that name is now cached in this process

    call_command("reembed", "--model", INT8, stdout=io.StringIO(), stderr=io.StringIO())
    assert selectors.active_model_name() == INT8
    assert Embedding.objects.filter(model=INT8).count() == Embedding.objects.filter(
        model="all-MiniLM-L6-v2").count() > 0

    # The cached torch name is no longer active: the search notices, looks the name up again and embeds the query
    # with int8, so int8 query vectors only ever meet int8 stored vectors.
    after = _post(client, token, {"input": REFUND_QUERY, "k": 1}).json()
    assert after["model"] == INT8
    assert [e["turn_id"] for e in after["examples"]] == [cases.refund.turn.pk]
    assert abs(after["examples"][0]["similarity"] - before["examples"][0]["similarity"]) < 0.03


@pytest.mark.django_db
def test_recall_rows_refuses_a_model_that_is_not_active(cases):
    vector = querying.embed_query(REFUND_QUERY, model="all-MiniLM-L6-v2")
    rows = selectors.recall_rows(query_vector=vector, k=3, model="all-MiniLM-L6-v2")
    assert rows and rows[0].item.turn_id == cases.refund.turn.pk
    assert [r.similarity for r in rows] == sorted((r.similarity for r in rows), reverse=True)
    assert selectors.recall_rows(query_vector=vector, k=3, model=INT8) is None


@pytest.mark.django_db
def test_a_warm_request_reads_no_token_or_model_row(cases):
    token = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["recall-tests"], gate="approved")[1]
    client = Client()
    _post(client, token, {"input": REFUND_QUERY, "k": 2, "filters": {"tags": ["factually-incorrect"]}})
    with CaptureQueriesContext(connection) as captured:
        response = _post(client, token, {"input": REFUND_QUERY, "k": 2, "filters": {"tags": ["factually-incorrect"]}})
    assert response.status_code == 200 and response.json()["examples"]
    sql = " ".join(q["sql"] for q in captured.captured_queries)
    assert "feedbackhub_apitoken" not in sql
    assert "FROM \"recall_embeddingmodel\"" not in sql  # only inside the search's own active-model check
    # The search settings, the search with every row it shows, and the triage clusters' guidance notes (plus the
    # transaction around the search).
    searches = [q for q in captured.captured_queries if "halfvec" in q["sql"]]
    assert len(searches) == 1 and len(captured.captured_queries) <= 6  # + the tag names of the filter


@pytest.mark.django_db
def test_a_revoked_token_is_refused_at_once_even_when_cached():
    row, token = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["recall-tests"], gate="approved")
    client = Client()
    assert _post(client, token, {"input": "hello", "k": 1}).status_code == 200
    auth_tokens.api_token_revoke(token_id=row.pk)
    assert _post(client, token, {"input": "hello", "k": 1}).status_code == 401


def test_warm_up_loads_the_active_model(db):
    assert querying.warm_up() == selectors.active_model_name()
    assert embeddings.is_loaded(selectors.active_model_name())
