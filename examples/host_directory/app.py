"""A host application with its own users, implementing Reclaim's HTTP directory contract
(docs/directory-http.md) under /reclaim. A reference, not a product: copy what you need.

    export HOST_WEBHOOK_SECRET=whsec_...   # the same as RECLAIM_HTTP_DIRECTORY_SECRET
    python examples/host_directory/app.py add-user --db host.db --username jane \\
        --email jane@example.com --phone +14155550123 --password 'correct horse battery staple'
    python examples/host_directory/app.py serve --db host.db --port 9000
    # then RECLAIM_DIRECTORY=http RECLAIM_HTTP_DIRECTORY_URL=http://127.0.0.1:9000/reclaim

It keeps users, their last passwords (scrypt), sessions, the status Reclaim sets (a ban,
its end, a deactivation and the purge that ends it: a tombstone row) with a record of every
status change, and the answer to every change by its
idempotency key (`webhook-id`): a change Reclaim sends again is answered, not redone.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import pyotp
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook, WebhookVerificationError

HISTORY = 5  # a new password may not be one of the last five
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL,
    email TEXT UNIQUE NOT NULL, phone TEXT UNIQUE, status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL, password_changed_at TEXT);
CREATE TABLE IF NOT EXISTS passwords (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
    hash TEXT NOT NULL, case_id TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS changes (key TEXT PRIMARY KEY, status INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS status_changes (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
    status TEXT NOT NULL, case_id TEXT, reason TEXT, actor TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS totp (user_id INTEGER PRIMARY KEY, secret TEXT NOT NULL,
    enrolled_at TEXT NOT NULL, last_used_at TEXT);
CREATE TABLE IF NOT EXISTS totp_steps (user_id INTEGER NOT NULL, step INTEGER NOT NULL,
    case_id TEXT NOT NULL, PRIMARY KEY (user_id, step));
"""
# Added to `users` since the first version (a database made by it gets them at start).
ADDED_COLUMNS = (
    "status_since",
    "status_until",
    "status_reason",
    "status_case",
    "contacts_changed_at",
)


def now() -> str:
    return datetime.now(UTC).isoformat()


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(stored: str, password: str) -> bool:
    salt, digest = (base64.b64decode(part) for part in stored.split("$"))
    given = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return hmac.compare_digest(given, digest)


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    columns = {row["name"] for row in db.execute("PRAGMA table_info(users)")}
    for column in ADDED_COLUMNS:
        if column not in columns:
            db.execute(f"ALTER TABLE users ADD COLUMN {column} TEXT")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def add_user(db: sqlite3.Connection, username: str, email: str, phone: str | None, pw: str) -> int:
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO users (username, email, phone, created_at) VALUES (?, ?, ?, ?)",
            (username.lower(), email.lower(), phone, now()),
        )
        user_id = int(cursor.lastrowid or 0)
        db.execute(
            "INSERT INTO passwords (user_id, hash, at) VALUES (?, ?, ?)",
            (user_id, hash_password(pw), now()),
        )
    return user_id


def add_totp(db: sqlite3.Connection, username: str) -> str:
    """An authenticator app for the user (replacing any): its base32 secret. A real host keeps
    it encrypted; this reference keeps it plain."""
    secret = pyotp.random_base32()
    with transaction(db):
        row = db.execute("SELECT id FROM users WHERE username = ?", (username.lower(),)).fetchone()
        db.execute(
            "INSERT OR REPLACE INTO totp (user_id, secret, enrolled_at) VALUES (?, ?, ?)",
            (row["id"], secret, now()),
        )
    return secret


def create_app(db_path: str, secret: str) -> FastAPI:
    db = connect(db_path)
    webhook = Webhook(secret)
    app = FastAPI(title="Example host application")

    async def signed(request: Request) -> dict[str, Any]:
        """Only Reclaim, signing with the shared secret, may call the contract."""
        body = await request.body()
        try:
            webhook.verify(body, dict(request.headers), json_parse=False)
        except WebhookVerificationError as err:
            raise Refusal(401, "bad_signature") from err
        return {"key": request.headers["webhook-id"], "json": _json(body)}

    reclaim = APIRouter(prefix="/reclaim", dependencies=[Depends(signed)])
    # Evaluated annotations (no `from __future__ import annotations` here): FastAPI reads this
    # local type when it builds the routes below.
    Signed = Annotated[dict[str, Any], Depends(signed)]

    def account(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": str(row["id"]),
            "username": row["username"],
            "email": row["email"],
            "phone": row["phone"],
            "status": row["status"],
            "status_since": row["status_since"],
            "status_until": row["status_until"],
            "status_reason": row["status_reason"],
            "status_case": row["status_case"],
            "created_at": row["created_at"],
            "password_changed_at": row["password_changed_at"],
            # When the email or phone last changed (null: as created): a recovery soon after
            # is held by Reclaim.
            "contacts_changed_at": row["contacts_changed_at"],
            # The second factors Reclaim must ask a proof of after the contact code.
            "factors": factors(row["id"]),
        }

    def factors(user_id: int) -> list[dict[str, Any]]:
        app = db.execute("SELECT * FROM totp WHERE user_id = ?", (user_id,)).fetchone()
        if app is None:
            return []
        return [
            {"kind": "totp", "enrolled_at": app["enrolled_at"], "last_used_at": app["last_used_at"]}
        ]

    def user(user_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise Refusal(404, "not_found")
        return row

    def once(key: str, change: Any) -> JSONResponse:
        """Apply `change` unless this idempotency key was applied: then answer the same. The
        change and its answer are kept in one transaction."""
        with transaction(db):
            done = db.execute("SELECT status, body FROM changes WHERE key = ?", (key,)).fetchone()
            if done is not None:
                return JSONResponse(json.loads(done["body"]), status_code=done["status"])
            status, body = change()
            db.execute(
                "INSERT INTO changes (key, status, body) VALUES (?, ?, ?)",
                (key, status, json.dumps(body)),
            )
        return JSONResponse(body, status_code=status)

    @reclaim.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @reclaim.post("/accounts/lookup")
    async def lookup(call: Signed) -> dict[str, Any]:
        kind, value = call["json"].get("kind"), str(call["json"].get("value", ""))
        column = {"email": "email", "phone": "phone", "username": "username"}.get(kind)
        if column is None:
            raise Refusal(400, "bad_kind")
        row = db.execute(f"SELECT * FROM users WHERE {column} = ?", (value,)).fetchone()  # noqa: S608
        if row is None:
            raise Refusal(404, "not_found")
        return account(row)

    @reclaim.get("/accounts/{user_id}")
    async def read(user_id: str) -> dict[str, Any]:
        return account(user(user_id))

    @reclaim.post("/accounts/{user_id}/passwords/check")
    async def check(user_id: str, call: Signed) -> dict[str, Any]:
        recent = recent_hashes(user(user_id)["id"])
        given = [str(p) for p in call["json"].get("passwords", [])][:HISTORY]
        return {"matches": [any(verify_password(h, p) for h in recent) for p in given]}

    def recent_hashes(user_id: int) -> list[str]:
        rows = db.execute(
            "SELECT hash FROM passwords WHERE user_id = ? ORDER BY id DESC LIMIT ?",
            (user_id, HISTORY),
        )
        return [row["hash"] for row in rows]

    @reclaim.post("/accounts/{user_id}/factors/verify")
    async def verify_factor(user_id: str, call: Signed) -> dict[str, Any]:
        """A TOTP code of the current 30 s step or one either side, each step once per user;
        the same case asking again (Reclaim retrying) gets the same answer. This reference
        keeps no passkeys or recovery codes: a proof of those is not accepted."""
        uid = user(user_id)["id"]
        body = call["json"]
        app = db.execute("SELECT secret FROM totp WHERE user_id = ?", (uid,)).fetchone()
        code, case_id = str(body.get("code", "")), str(body.get("case_id", ""))
        if body.get("kind") != "totp" or app is None or not case_id:
            return {"accepted": False}
        totp, at = pyotp.TOTP(app["secret"]), datetime.now(UTC)
        step = next(
            (s for s in (0, -1, 1) if hmac.compare_digest(totp.at(at, counter_offset=s), code)),
            None,
        )
        if step is None:
            return {"accepted": False}
        counter = totp.timecode(at) + step
        with transaction(db):
            used = db.execute(
                "SELECT case_id FROM totp_steps WHERE user_id = ? AND step = ?", (uid, counter)
            ).fetchone()
            if used is not None:
                return {"accepted": used["case_id"] == case_id}
            db.execute(
                "INSERT INTO totp_steps (user_id, step, case_id) VALUES (?, ?, ?)",
                (uid, counter, case_id),
            )
            db.execute("UPDATE totp SET last_used_at = ? WHERE user_id = ?", (now(), uid))
        return {"accepted": True}

    @reclaim.post("/accounts/{user_id}/factors/remove")
    async def remove_factor(user_id: str, call: Signed) -> JSONResponse:
        """After an approved claim: the factor the reviewer chose goes."""
        uid = user(user_id)["id"]

        def change() -> tuple[int, dict[str, Any]]:
            if call["json"].get("kind") != "totp":
                return 200, {"removed": False}
            gone = db.execute("DELETE FROM totp WHERE user_id = ?", (uid,)).rowcount
            return 200, {"removed": bool(gone)}

        return once(call["key"], change)

    @reclaim.post("/accounts/{user_id}/password")
    async def set_password(user_id: str, call: Signed) -> JSONResponse:
        row = user(user_id)
        password, case_id = str(call["json"]["password"]), call["json"].get("case_id")

        def change() -> tuple[int, dict[str, Any]]:
            if row["status"] not in ("active", "deactivated"):
                return 409, {"error": "account_gone"}
            if len(password) < 8:
                return 422, {"error": "weak_password", "reasons": ["at least 8 characters"]}
            if any(verify_password(h, password) for h in recent_hashes(row["id"])):
                return 422, {"error": "password_reused"}
            at = now()
            db.execute(
                "INSERT INTO passwords (user_id, hash, case_id, at) VALUES (?, ?, ?, ?)",
                (row["id"], hash_password(password), case_id, at),
            )
            db.execute("UPDATE users SET password_changed_at = ? WHERE id = ?", (at, row["id"]))
            db.execute("UPDATE sessions SET revoked = 1 WHERE user_id = ?", (row["id"],))
            if row["status"] == "deactivated":  # a recovery keeps the account: no purge
                db.execute(
                    "UPDATE users SET status = 'active', status_since = ?, status_until = NULL, "
                    "status_reason = NULL, status_case = NULL WHERE id = ?",
                    (at, row["id"]),
                )
                return 200, {"applied": True, "reactivated": row["status_case"]}
            return 200, {"applied": True}

        return once(call["key"], change)

    @reclaim.post("/accounts/{user_id}/sessions/revoke")
    async def revoke(user_id: str, call: Signed) -> JSONResponse:
        row = user(user_id)

        def change() -> tuple[int, dict[str, Any]]:
            cursor = db.execute(
                "UPDATE sessions SET revoked = 1 WHERE user_id = ? AND revoked = 0", (row["id"],)
            )
            return 200, {"revoked": cursor.rowcount}

        return once(call["key"], change)

    @reclaim.post("/accounts/{user_id}/contacts")
    async def contacts(user_id: str, call: Signed) -> JSONResponse:
        row = user(user_id)
        email, phone = str(call["json"]["email"]).lower(), call["json"].get("phone")

        def change() -> tuple[int, dict[str, Any]]:
            if row["status"] != "active":
                return 409, {"error": "account_gone"}
            taken = db.execute(
                "SELECT id FROM users WHERE email = ? AND id != ?", (email, row["id"])
            ).fetchone()
            if taken is not None:
                return 409, {"error": "email_taken"}
            db.execute(
                "UPDATE users SET email = ?, phone = ?, contacts_changed_at = ? WHERE id = ?",
                (email, phone, now(), row["id"]),
            )
            db.execute("UPDATE sessions SET revoked = 1 WHERE user_id = ?", (row["id"],))
            return 200, {"applied": True}

        return once(call["key"], change)

    @reclaim.post("/accounts/{user_id}/status")
    async def status(user_id: str, call: Signed) -> JSONResponse:
        user(user_id)
        given = call["json"]
        new, case_id = given.get("status"), given.get("case_id") or None
        actor = given.get("actor") or {}
        by = f"{actor.get('kind', '?')}: {actor.get('name', '?')}"

        def change() -> tuple[int, dict[str, Any]]:
            row = user(user_id)  # as it is inside this transaction
            since = str(given.get("since") or now())
            if new == "banned":
                if row["status"] == "banned" and row["status_case"] == case_id:
                    return 200, account(row)  # this case's ban is in place already
                db.execute(
                    "UPDATE users SET status = 'banned', status_since = ?, status_until = ?, "
                    "status_reason = ?, status_case = ? WHERE id = ?",
                    (since, given.get("until"), given.get("reason"), case_id, row["id"]),
                )
                db.execute("UPDATE sessions SET revoked = 1 WHERE user_id = ?", (row["id"],))
            elif new == "deactivated":
                # Only an active user is deactivated; until `until`, then Reclaim purges.
                if row["status"] == "deactivated" and row["status_case"] == case_id:
                    return 200, account(row)  # this case's deactivation is in place already
                if row["status"] != "active":
                    return 409, {"error": "not_in_charge", **account(row)}
                db.execute(
                    "UPDATE users SET status = 'deactivated', status_since = ?, "
                    "status_until = ?, status_reason = ?, status_case = ? WHERE id = ?",
                    (since, given.get("until"), given.get("reason"), case_id, row["id"]),
                )
                db.execute("UPDATE sessions SET revoked = 1 WHERE user_id = ?", (row["id"],))
            elif new == "active":
                # Only the ban (or the deactivation) this case set, or a ban no case is in
                # charge of, is lifted.
                lifted = ("banned", "disabled", "deactivated")
                if row["status"] not in lifted or row["status_case"] != case_id:
                    return 409, {"error": "not_in_charge", **account(row)}
                db.execute(
                    "UPDATE users SET status = 'active', status_since = ?, status_until = NULL, "
                    "status_reason = NULL, status_case = NULL WHERE id = ?",
                    (since, row["id"]),
                )
            else:  # Reclaim sends no other status
                return 422, {"error": "bad_status"}
            db.execute(
                "INSERT INTO status_changes (user_id, status, case_id, reason, actor, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row["id"], new, case_id, given.get("reason"), by, since),
            )
            previous = row["status_case"] if new == "banned" else None  # the case it replaced
            return 200, {**account(user(user_id)), "previous_case": previous}

        return once(call["key"], change)

    @reclaim.post("/accounts/{user_id}/purge")
    async def purge(user_id: str, call: Signed) -> JSONResponse:
        """The end of a deactivation's grace period: erase the person, keep a tombstone (the
        row, its id, its status record), so that Reclaim reads the account as purged."""
        user(user_id)
        given = call["json"]
        case_id, at = given.get("case_id"), str(given.get("at") or now())

        def change() -> tuple[int, dict[str, Any]]:
            row = user(user_id)
            if row["status"] == "purged" and row["status_case"] == case_id:
                return 200, account(row)  # done already
            if row["status"] != "deactivated" or row["status_case"] != case_id:
                return 409, {"error": "not_in_charge", **account(row)}
            tombstone = f"purged:{row['id']}"
            db.execute(
                "UPDATE users SET username = ?, email = ?, phone = NULL, status = 'purged', "
                "status_since = ?, status_until = NULL, status_reason = NULL, "
                "password_changed_at = NULL, contacts_changed_at = NULL WHERE id = ?",
                (tombstone, tombstone, at, row["id"]),
            )
            for table in ("passwords", "sessions", "totp", "totp_steps"):
                db.execute(f"DELETE FROM {table} WHERE user_id = ?", (row["id"],))  # noqa: S608
            db.execute(
                "INSERT INTO status_changes (user_id, status, case_id, reason, actor, at) "
                "VALUES (?, 'purged', ?, NULL, 'system: deletion grace period', ?)",
                (row["id"], case_id, at),
            )
            return 200, account(user(user_id))

        return once(call["key"], change)

    app.include_router(reclaim)

    # Every endpoint is a coroutine: the one SQLite connection is used by the event loop's
    # thread alone.

    # -- the host's own sign-in, for its users ---------------------------------------------

    @app.post("/login")
    async def login(request: Request) -> JSONResponse:
        given = _json(await request.body())
        row = db.execute(
            "SELECT * FROM users WHERE username = ?", (str(given.get("username", "")).lower(),)
        ).fetchone()
        current = recent_hashes(row["id"])[:1] if row is not None else []
        if not current or not verify_password(current[0], str(given.get("password", ""))):
            return JSONResponse({"error": "invalid_credentials"}, status_code=401)
        if row["status"] != "active":
            return JSONResponse({"error": f"account_{row['status']}"}, status_code=403)
        token = secrets.token_urlsafe(24)
        with transaction(db):
            db.execute("INSERT INTO sessions (token, user_id) VALUES (?, ?)", (token, row["id"]))
        return JSONResponse({"session": token})

    @app.exception_handler(Refusal)
    async def refused(_request: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse({"error": exc.error}, status_code=exc.status)

    return app


class Refusal(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--db", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9000)
    app_of = commands.add_parser("add-totp", help="an authenticator app for a user")
    app_of.add_argument("--db", required=True)
    app_of.add_argument("--username", required=True)
    new = commands.add_parser("add-user")
    new.add_argument("--db", required=True)
    for option in ("--username", "--email", "--password"):
        new.add_argument(option, required=True)
    new.add_argument("--phone")
    args = parser.parse_args()
    if args.command == "add-totp":
        print(add_totp(connect(args.db), args.username))
        return
    if args.command == "add-user":
        user_id = add_user(connect(args.db), args.username, args.email, args.phone, args.password)
        print(f"user {user_id}")
        return
    app = create_app(args.db, os.environ["HOST_WEBHOOK_SECRET"])
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
