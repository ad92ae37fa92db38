"""The demo hotline's backend: customers, orders and tickets as JSON over HTTP, kept in SQLite.

Run it with `python -m ivr.demo_backend --port 8099 --db demo.db`. The database is created and
seeded (deterministically) the first time; the same data serves the English and Mandarin demos.
"""

import argparse
import asyncio
import datetime as dt
import hmac
import json
import logging
import os
import random
import re
import sqlite3
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

ORDER_ID = re.compile(r"\d{6}")
PHONE = re.compile(r"\+\d{7,15}")
TICKET_KINDS = ("return", "callback", "cancel", "complaint", "other")
MAX_NOTE_CHARS = 500

SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, first_name TEXT, phone TEXT UNIQUE,
                        vip INTEGER, language TEXT);
CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), status TEXT,
                     carrier TEXT, shipped_on TEXT, eta TEXT, delivered_on TEXT, total_cents INTEGER,
                     currency TEXT, items INTEGER, returnable INTEGER);
CREATE TABLE tickets (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, order_id TEXT, phone TEXT, note TEXT,
                      created_at TEXT);
"""
CUSTOMERS = [  # name, first name, phone, vip, language
    ("Alice Johnson", "Alice", "+15550100", 1, "en-US"), ("Bob Smith", "Bob", "+15550101", 0, "en-US"),
    ("Carol Davis", "Carol", "+15550102", 0, "en-US"), ("David Brown", "David", "+15550103", 1, "en-US"),
    ("Emma Wilson", "Emma", "+15550104", 0, "en-US"), ("Frank Miller", "Frank", "+15550105", 0, "en-US"),
    ("Grace Lee", "Grace", "+15550106", 0, "en-US"), ("Henry Garcia", "Henry", "+15550107", 0, "en-US"),
    ("王伟", "伟", "+8613800138000", 1, "zh-CN"), ("李娜", "娜", "+8613900139000", 0, "zh-CN"),
]
STATUSES = ("shipped", "delivered", "processing", "delivered", "cancelled")
CARRIERS = ("UPS", "FedEx", "USPS", "DHL")
SEED_DAY = dt.date(2025, 6, 2)   # fixed, so every seeded database is identical


def seed_rows() -> list[tuple]:
    """20 orders, 481516 first (shipped), from a fixed-seed generator."""
    rng = random.Random(481516)
    ids = ["481516"]
    while len(ids) < 20:
        candidate = str(rng.randint(100000, 999999))
        if candidate not in ids:
            ids.append(candidate)
    rows = []
    for i, order_id in enumerate(ids):
        status = STATUSES[i % len(STATUSES)]
        ordered = SEED_DAY + dt.timedelta(days=i)
        shipped = ordered + dt.timedelta(days=1) if status in ("shipped", "delivered") else None
        delivered = shipped + dt.timedelta(days=3) if status == "delivered" else None
        eta = ordered + dt.timedelta(days=5) if status in ("shipped", "processing") else None
        carrier = CARRIERS[i % len(CARRIERS)] if shipped else None
        currency = "CNY" if i % 10 in (8, 9) else "USD"
        rows.append((order_id, i % len(CUSTOMERS) + 1, status, carrier, _iso(shipped), _iso(eta), _iso(delivered),
                     rng.randint(999, 49999), currency, rng.randint(1, 4), int(status == "delivered" and i % 4 != 3)))
    return rows


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def ensure_db(db_path: Path) -> None:
    """Create and seed the database if the file does not exist (atomically: seed aside, then rename)."""
    if db_path.exists():
        return
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(db_path.name + ".seeding")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.executescript(SCHEMA)
        customers = [(i + 1, *c) for i, c in enumerate(CUSTOMERS)]
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customers)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", seed_rows())
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', 10000)")
    db.close()
    os.replace(tmp, db_path)
    log.info("seeded demo database %s", db_path)


class Store:
    """Each call opens its own connection in a worker thread: the data is tiny and the loop stays free."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _run(self, sql: str, args: tuple, write: bool) -> list[dict] | int:
        db = sqlite3.connect(self.db_path)
        try:
            db.row_factory = sqlite3.Row
            cur = db.execute(sql, args)
            if write:
                db.commit()
                return cur.lastrowid or 0
            return [dict(r) for r in cur.fetchall()]
        finally:
            db.close()

    async def query(self, sql: str, *args) -> list[dict]:
        return await asyncio.to_thread(self._run, sql, args, False)

    async def insert(self, sql: str, *args) -> int:
        return await asyncio.to_thread(self._run, sql, args, True)


def _customer_json(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "first_name": row["first_name"], "phone": row["phone"],
            "vip": bool(row["vip"]), "language": row["language"]}


def _order_json(row: dict) -> dict:
    total = {"amount": f"{row['total_cents'] // 100}.{row['total_cents'] % 100:02d}", "currency": row["currency"]}
    return {"order_id": row["order_id"], "status": row["status"], "carrier": row["carrier"],
            "shipped_on": row["shipped_on"], "eta": row["eta"], "delivered_on": row["delivered_on"], "total": total,
            "items": row["items"], "returnable": bool(row["returnable"]), "customer_id": row["customer_id"]}


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _fail(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _phone(text: str) -> str | None:
    """E.164 after dropping readability marks; a "+" that arrived unescaped (a space) is not accepted."""
    text = re.sub(r"[-().]", "", text)
    return text if PHONE.fullmatch(text) else None


def create_app(db_path: Path, token: str | None = None) -> web.Application:
    ensure_db(db_path)
    store = Store(db_path)

    @web.middleware
    async def guard(request: web.Request, handler):
        if token and request.path != "/health":
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return _fail(401, "missing or wrong bearer token")
        try:
            return await handler(request)
        except web.HTTPException as e:   # unknown routes, wrong methods: JSON like everything else
            if e.status < 400:
                raise
            return _fail(e.status, e.reason.lower())

    async def health(_: web.Request) -> web.Response:
        return _json({"ok": True})

    async def customer_by_phone(request: web.Request) -> web.Response:
        phone = _phone(request.query.get("phone", ""))
        if phone is None:
            return _fail(400, "phone must be E.164 like +15550101 (escape '+' as %2B)")
        rows = await store.query("SELECT * FROM customers WHERE phone = ?", phone)
        return _json(_customer_json(rows[0])) if rows else _fail(404, "not found")

    async def order(request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        if not ORDER_ID.fullmatch(order_id):
            return _fail(400, "order id must be 6 digits")
        rows = await store.query("SELECT * FROM orders WHERE order_id = ?", order_id)
        return _json(_order_json(rows[0])) if rows else _fail(404, "not found")

    async def customer_orders(request: web.Request) -> web.Response:
        cid = request.match_info["customer_id"]
        if not cid.isdigit():
            return _fail(400, "customer id must be a number")
        if not await store.query("SELECT id FROM customers WHERE id = ?", int(cid)):
            return _fail(404, "not found")
        rows = await store.query("SELECT * FROM orders WHERE customer_id = ? ORDER BY order_id", int(cid))
        return _json({"customer_id": int(cid), "orders": [_order_json(r) for r in rows]})

    async def create_ticket(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _fail(400, "body must be JSON")
        if not isinstance(body, dict):
            return _fail(400, "body must be a JSON object")
        kind, order_id, phone, note = body.get("kind"), body.get("order_id"), body.get("phone"), body.get("note", "")
        if kind not in TICKET_KINDS:
            return _fail(400, f"kind must be one of {', '.join(TICKET_KINDS)}")
        if order_id is None and phone is None:
            return _fail(400, "give order_id or phone")
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            return _fail(400, f"note must be text of at most {MAX_NOTE_CHARS} characters")
        if phone is not None and (not isinstance(phone, str) or _phone(phone) is None):
            return _fail(400, "phone must be E.164 like +15550101")
        if order_id is not None:
            if not isinstance(order_id, str | int) or not ORDER_ID.fullmatch(str(order_id)):
                return _fail(400, "order_id must be 6 digits")
            rows = await store.query("SELECT returnable FROM orders WHERE order_id = ?", str(order_id))
            if not rows:
                return _fail(400, f"no order {order_id}")
            if kind == "return" and not rows[0]["returnable"]:
                return _fail(409, f"order {order_id} is not returnable")
        elif kind == "return":
            return _fail(400, "a return needs order_id")
        phone = _phone(phone) if phone is not None else None
        order_id = str(order_id) if order_id is not None else None
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        row_id = await store.insert("INSERT INTO tickets (kind, order_id, phone, note, created_at) "
                                    "VALUES (?, ?, ?, ?, ?)", kind, order_id, phone, note, created_at)
        return _json({"ticket_id": f"T{row_id}", "kind": kind, "order_id": order_id, "phone": phone,
                                  "note": note, "status": "open", "created_at": created_at}, status=201)

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app.router.add_get("/health", health)
    app.router.add_get("/customers", customer_by_phone)
    app.router.add_get("/customers/{customer_id}/orders", customer_orders)
    app.router.add_get("/orders/{order_id}", order)
    app.router.add_post("/tickets", create_ticket)
    return app


async def start_backend(host: str = "127.0.0.1", port: int = 0, db_path: Path = Path("demo_backend.db"),
                        token: str | None = None) -> tuple[web.AppRunner, str]:
    """Serve in the running loop; returns the runner (call `cleanup()`) and the base URL."""
    runner = web.AppRunner(create_app(Path(db_path), token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.demo_backend", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--db", type=Path, default=Path("demo_backend.db"), help="SQLite file (seeded if missing)")
    parser.add_argument("--token", default=os.environ.get("DEMO_BACKEND_TOKEN") or None,
                        help="require 'Authorization: Bearer TOKEN' (default: $DEMO_BACKEND_TOKEN)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(args.db, args.token)
    except (OSError, sqlite3.Error) as e:
        parser.error(f"cannot open database {args.db}: {e}")
    auth = "bearer token required" if args.token else "no auth"
    web.run_app(app, host=args.host, port=args.port, access_log=None,
                print=lambda _: print(f"demo backend on http://{args.host}:{args.port} ({args.db}, {auth})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
