"""Clustering on plain arrays: no database, no Django. The triage services feed it vectors and store what it returns.

All vectors are L2-normalised sentence embeddings, so cosine distance is ``1 - a·b``.

* :func:`group` puts vectors into clusters with average-linkage agglomerative clustering and a cosine distance
  threshold (two groups join while their members' mean pairwise distance is below it). Up to ``DIRECT_MAX`` vectors
  are clustered directly; larger inputs are taken in chunks exactly as the job takes batches (join the nearest
  cluster so far when close enough, cluster the rest), which keeps memory linear and 100k vectors within seconds
  (docs/triage.md has what was measured against the alternatives).
* :func:`nearest` finds each vector's nearest centroid (used when the database search is not available, e.g. in
  the quality benchmark).
* :func:`titles` names clusters by their distinctive terms: c-TF-IDF, i.e. TF-IDF where each cluster's members are
  one document, so a term scores high when it is frequent in this cluster and rare in the others.
* :func:`purity` and :func:`adjusted_rand` score a clustering against labels.

Everything is deterministic for the same input in the same order (fixed random_state), so a run that is interrupted
and repeated produces the same clusters.

scikit-learn takes a second or two and over 100 MB to import, so it is loaded on first use (``_sklearn``): a
worker preloads it when it starts (``tasks``), and a process that never clusters (an import, a web process whose
moderators do not merge or move members) never pays for it.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
from scipy.sparse import csr_matrix


@functools.cache
def _sklearn() -> SimpleNamespace:
    """The scikit-learn parts this module uses, imported once per process on first use (module docstring)."""
    from sklearn.cluster import AgglomerativeClustering  # noqa: PLC0415
    from sklearn.feature_extraction.text import CountVectorizer  # noqa: PLC0415
    from sklearn.metrics import adjusted_rand_score  # noqa: PLC0415
    from sklearn.preprocessing import normalize  # noqa: PLC0415

    return SimpleNamespace(AgglomerativeClustering=AgglomerativeClustering, CountVectorizer=CountVectorizer,
                           adjusted_rand_score=adjusted_rand_score, normalize=normalize)


def preload() -> None:
    _sklearn()


#: Above this many vectors, cluster in chunks of this size (each chunk joins the clusters found so far first).
DIRECT_MAX = 2000
#: Default join distance for chunked clustering, relative to the grouping threshold (0.35 / 0.45 as configured).
ASSIGN_RATIO = 0.35 / 0.45
#: Words of two or more characters that start with a letter (no bare numbers in titles).
WORD_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9'-]+\b"


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def split_in_two(x: np.ndarray) -> np.ndarray:
    """Labels (0 or 1) of the two main parts of ``x`` by average-linkage clustering on cosine distance."""
    return _sklearn().AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average").fit_predict(x)


def _agglomerate(x: np.ndarray, threshold: float) -> np.ndarray:
    if len(x) == 1:
        return np.zeros(1, dtype=np.int64)
    # Cosine distances of unit vectors by one matrix product (float64, as scipy's pdist would compute them, but
    # tens of times faster for a 2000-vector chunk); the clustering is the same average linkage.
    x64 = np.asarray(x, dtype=np.float64)
    distances = np.clip(1.0 - x64 @ x64.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    model = _sklearn().AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=threshold,
        compute_full_tree=True,
    )
    return model.fit_predict(distances).astype(np.int64)


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel so cluster numbers follow the first appearance of each cluster (stable across equal runs)."""
    mapping: dict[int, int] = {}
    out = np.empty_like(labels)
    for i, label in enumerate(labels.tolist()):
        out[i] = mapping.setdefault(label, len(mapping))
    return out


def group(vectors: np.ndarray, *, threshold: float, assign: float | None = None) -> np.ndarray:
    """Cluster labels (0..k-1, in order of first member) for ``vectors`` (n x d, normalised).

    ``threshold`` is the cosine distance below which average linkage joins two groups. Every vector gets a label;
    a vector unlike all others is a cluster of its own. Above ``DIRECT_MAX`` vectors the input is taken in chunks,
    the way the clustering job takes batches: a chunk's vectors join the nearest cluster found so far when within
    ``assign`` (cosine distance to its centroid; default ``ASSIGN_RATIO * threshold``), and the rest are clustered
    among themselves. Memory stays linear and 100k vectors take seconds.
    """
    x = normalise(vectors)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= DIRECT_MAX:
        return _canonical(_agglomerate(x, threshold))
    assign = ASSIGN_RATIO * threshold if assign is None else assign
    labels = np.full(n, -1, dtype=np.int64)
    sums = np.zeros((0, x.shape[1]), dtype=np.float64)
    for start in range(0, n, DIRECT_MAX):
        index = np.arange(start, min(n, start + DIRECT_MAX))
        rest = index
        if len(sums):
            best, dist = nearest(x[index], sums)
            hit = dist <= assign
            labels[index[hit]] = best[hit]
            sums += _sum_by_label(x[index[hit]], best[hit], len(sums))
            rest = index[~hit]
        if len(rest):
            local = _agglomerate(x[rest], threshold)
            labels[rest] = local + len(sums)
            sums = np.vstack([sums, _sum_by_label(x[rest], local, int(local.max()) + 1)])
    return _canonical(labels)


def _sum_by_label(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Row sums of ``x`` per label (k x d), as a sparse one-hot product (np.add.at is far slower)."""
    onehot = csr_matrix((np.ones(len(labels), dtype=np.float64), (labels, np.arange(len(labels)))),
                        shape=(k, len(labels)))
    return np.asarray(onehot @ x.astype(np.float64))


def centroids(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) per label: the unnormalised sum of each cluster's vectors and its size."""
    k = int(labels.max()) + 1 if len(labels) else 0
    if k == 0:
        return np.zeros((0, vectors.shape[1]), dtype=np.float64), np.zeros(0, dtype=np.int64)
    return _sum_by_label(np.asarray(vectors), labels, k), np.bincount(labels, minlength=k)


def nearest(vectors: np.ndarray, centres: np.ndarray, *, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each vector: index of the nearest centre and the cosine distance to it (both normalised)."""
    if len(centres) == 0:
        return np.full(len(vectors), -1, dtype=np.int64), np.full(len(vectors), np.inf)
    c = normalise(centres).T
    v = normalise(vectors)
    best = np.empty(len(v), dtype=np.int64)
    dist = np.empty(len(v), dtype=np.float64)
    for start in range(0, len(v), chunk):  # bounded memory for the similarity block
        sims = v[start:start + chunk] @ c
        b = sims.argmax(axis=1)
        best[start:start + chunk] = b
        dist[start:start + chunk] = 1.0 - sims[np.arange(len(b)), b]
    return best, dist


def representatives(vectors: np.ndarray, centre: np.ndarray, k: int = 3) -> list[int]:
    """Indexes of the ``k`` vectors nearest ``centre``, nearest first."""
    if len(vectors) == 0:
        return []
    sims = normalise(vectors) @ normalise(centre[None, :])[0]
    order = np.argsort(-sims, kind="stable")
    return [int(i) for i in order[:k]]


def titles(documents: Sequence[Sequence[str]], *, terms: int = 4) -> list[list[str]]:
    """The most distinctive terms of each cluster (c-TF-IDF).

    ``documents[i]`` is the texts of cluster ``i``'s members (a sample is enough). The texts of a cluster are joined
    into one document, counted with CountVectorizer (English stop words, words and two-word phrases) and weighted
    by c-TF-IDF across the clusters given, so give the clusters being named *and* their neighbours: a term
    found in every cluster ("model", "response") then scores low. A word already inside a chosen phrase is skipped.
    """
    joined = [" ".join(texts) for texts in documents]
    if not any(j.strip() for j in joined):
        return [[] for _ in joined]
    vectorizer = _sklearn().CountVectorizer(
        stop_words="english", ngram_range=(1, 2), token_pattern=WORD_PATTERN, lowercase=True
    )
    try:
        counts = vectorizer.fit_transform(joined)
    except ValueError:  # only stop words
        return [[] for _ in joined]
    # c-TF-IDF (as in BERTopic): term frequency within the cluster times log(1 + A / f_t), where A is the average
    # number of words per cluster and f_t the term's frequency over all clusters given.
    tf = _sklearn().normalize(counts, norm="l1", axis=1)
    frequency = np.asarray(counts.sum(axis=0)).ravel()
    average = counts.sum() / counts.shape[0]
    weights = tf.multiply(np.log1p(average / frequency)[None, :]).tocsr()
    vocabulary = vectorizer.get_feature_names_out()
    out: list[list[str]] = []
    for row in range(weights.shape[0]):
        start, end = weights.indptr[row], weights.indptr[row + 1]
        cols, vals = weights.indices[start:end], weights.data[start:end]
        order = np.lexsort((cols, -vals))  # highest weight first, ties by term order: deterministic
        chosen: list[str] = []
        for j in order:
            term = str(vocabulary[cols[j]])
            words = set(term.split())
            if any(term in c or words <= set(c.split()) or set(c.split()) <= words for c in chosen):
                continue
            chosen.append(term)
            if len(chosen) == terms:
                break
        out.append(chosen)
    return out


def title_text(terms: Sequence[str]) -> str:
    return ", ".join(terms) if terms else "Untitled cluster"


def purity(labels: Sequence[int], truth: Sequence[object]) -> float:
    """Share of vectors whose cluster's majority label is their own label."""
    by_cluster: dict[int, Counter] = {}
    for label, true in zip(labels, truth, strict=True):
        by_cluster.setdefault(int(label), Counter())[true] += 1
    total = sum(sum(c.values()) for c in by_cluster.values())
    return sum(c.most_common(1)[0][1] for c in by_cluster.values()) / total if total else 0.0


def adjusted_rand(labels: Sequence[int], truth: Sequence[object]) -> float:
    return float(_sklearn().adjusted_rand_score([str(t) for t in truth], list(labels)))
