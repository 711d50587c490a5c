import numpy as np
import pytest

from annotations.triage import clustering
from tests.annotations.triage.helpers import blob_vectors


def test_group_recovers_blobs_and_is_deterministic():
    vectors, labels = blob_vectors(5, 20)
    found = clustering.group(vectors, threshold=0.45)
    assert found.max() + 1 == 5
    assert clustering.purity(found, labels) == 1.0
    assert clustering.adjusted_rand(found, labels) == pytest.approx(1.0)
    assert (clustering.group(vectors, threshold=0.45) == found).all()
    # Labels follow first appearance.
    assert found[0] == 0


def test_group_large_input_in_chunks_matches_direct(monkeypatch):
    vectors, labels = blob_vectors(6, 40, seed=3)
    order = np.random.default_rng(4).permutation(len(vectors))
    vectors, labels = vectors[order], [labels[i] for i in order]
    direct = clustering.group(vectors, threshold=0.45)
    monkeypatch.setattr(clustering, "DIRECT_MAX", 50)
    chunked = clustering.group(vectors, threshold=0.45)
    assert clustering.adjusted_rand(chunked, labels) == pytest.approx(1.0)
    assert (chunked == direct).all()


def test_group_a_lone_vector_is_its_own_cluster():
    vectors, _ = blob_vectors(1, 10)
    odd = clustering.normalise(np.random.default_rng(9).normal(size=(1, 384)))
    found = clustering.group(np.concatenate([vectors, odd]), threshold=0.45)
    assert found.max() + 1 == 2
    assert list(found).count(found[-1]) == 1
    assert clustering.group(odd, threshold=0.45).tolist() == [0]


def test_titles_prefer_distinctive_terms():
    docs = [
        ["The refund policy quoted 90 days, but refunds are 30 days", "wrong refund window in the answer"],
        ["The answer used a rude tone", "tone was rude and dismissive in the answer"],
    ]
    titles = clustering.titles(docs, terms=2)
    assert "refund" in " ".join(titles[0])
    assert "rude" in " ".join(titles[1])
    # "answer" is in both clusters: not distinctive.
    assert not any(t == "answer" for t in titles[0] + titles[1])
    assert clustering.title_text([]) == "Untitled cluster"


def test_nearest_and_representatives():
    vectors, _ = blob_vectors(2, 5)
    centres = np.stack([vectors[:5].mean(0), vectors[5:].mean(0)])
    best, dist = clustering.nearest(vectors, centres)
    assert best.tolist() == [0] * 5 + [1] * 5
    assert (dist < 0.2).all()
    reps = clustering.representatives(vectors[:5], centres[0], k=2)
    assert len(reps) == 2 and set(reps) <= set(range(5))


def test_purity_counts_majorities():
    assert clustering.purity([0, 0, 1, 1], ["a", "b", "c", "c"]) == 0.75
