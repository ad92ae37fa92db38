"""Flow versions in PostgreSQL: what publishing, a node's poll and a version's first load cost.

    .venv/bin/python scripts/bench_versions_pg.py [--rounds 200] [--pg URL] [--json FILE]

With flows/retail/retail.yaml (its subflows, FAQ files: every file it is built from):
- publish: `versions.publish` of a changed copy, folder store vs PostgreSQL (each publish loads the
  flow and a copy of it, as `ivr flows publish` does; the store's own share is the difference);
- poll: what a serving node's watch does every second when nothing moved (`ServedAlias.load`:
  one revision read on PostgreSQL; the folder store re-reads state and manifests);
- first use on a node: `flow_path` of a version not yet cached (fetch, check hashes, write the
  cache) and of a cached one (re-hash the files);
- alias move: from `set_alias` on one store to the other node's revision read seeing it (the
  database's share; a serving node polls once per 1 s watch interval), and to its `ServedAlias`
  having swapped the version in (that adds the flow's load from the cache; prompt preparation left
  out: `on_ready` is None).
PostgreSQL: `--pg URL`, or a temporary server started like the tests' fixture (127.0.0.1, fsync on).
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import emit, machine_info, postgres_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.flow import versions  # noqa: E402
from ivr.flow.versions import AliasRef  # noqa: E402
from ivr.flow.versions_pg import PgVersionStore  # noqa: E402
from ivr.flow.versions_served import ServedAlias  # noqa: E402
from ivr.flow.versions_store import DirVersionStore  # noqa: E402


def _ms(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2)}


def _source(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT / "flows", src)
    return src / "retail" / "retail.yaml"


def _publish(store, flow: Path, rounds: int) -> list[float]:
    times = []
    text = flow.read_text()
    for k in range(rounds):
        flow.write_text(text + f"\n# bench {k} {time.time()}\n")
        started = time.perf_counter()
        versions.publish(store, flow, author="bench", alias="live" if k == 0 else None)
        times.append(time.perf_counter() - started)
    flow.write_text(text)
    return times


def run(url: str, rounds: int, tmp: Path) -> dict:
    flow = _source(tmp)
    out: dict = {}
    folder = DirVersionStore(tmp / "flows.d")
    pg = PgVersionStore(url, tmp / "cache-a").open()
    node = PgVersionStore(url, tmp / "cache-b").open()
    out["publish_folder"] = _ms(_publish(folder, flow, 5))
    out["publish_postgresql"] = _ms(_publish(pg, flow, 5))
    name = pg.names()[0]
    out["files_per_version"] = len(pg.manifest(name, 1).files)
    out["bytes_per_version"] = sum(len(pg.read_file(name, 1, rel)) for rel in pg.manifest(name, 1).files)
    for label, store in (("folder", folder), ("postgresql", node)):
        served = ServedAlias(store, AliasRef(name, "live"))
        served.load()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            assert served.load() is False
            times.append(time.perf_counter() - started)
        out[f"poll_unchanged_{label}"] = _ms(times)
    first, cached = [], []
    for number in range(2, 6):
        started = time.perf_counter()
        node.flow_path(name, number)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        node.flow_path(name, number)
        cached.append(time.perf_counter() - started)
    out["flow_path_first"] = _ms(first)
    out["flow_path_cached"] = _ms(cached)
    served = ServedAlias(node, AliasRef(name, "live"))
    served.load()
    seen, swapped = [], []
    for k in range(10):
        target = 2 + k % 4
        before = node.revision(name)
        started = time.perf_counter()
        versions.set_alias(pg, name, "live", target)
        while node.revision(name) == before:
            pass
        seen.append(time.perf_counter() - started)
        while not served.load():
            pass
        swapped.append(time.perf_counter() - started)
        assert served.version == target
    out["alias_move_revision_seen_by_other_node"] = _ms(seen)
    out["alias_move_swapped_on_other_node"] = _ms(swapped)
    pg.close()
    node.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--pg", help="PostgreSQL URL (default: start a temporary server)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with postgres_url(args.pg) as url, tempfile.TemporaryDirectory() as tmp:
        results.update(run(url, args.rounds, Path(tmp)))
    emit(results, args.json)

if __name__ == "__main__":
    main()
