"""The desktop's sign-in accounts: a JSON file of user id -> argon2id hash + role.

The file lives outside the repository, named by `desktop.credentials_file`, and
must be readable by its owner only (mode 0600): a file others can read is
refused, as the TLS key is. `hotline desktop passwd` writes it atomically.
The app re-reads it when it changes, so a new password works without a restart.

    {"version": 1, "users": {"a001": {"role": "agent", "hash": "$argon2id$v=19$..."}}}

An agent's account must be a configured agent id (the desktop acts on that
agent's state); a supervisor's may be any id of the same shape.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["agent", "supervisor"]
ROLES: tuple[Role, ...] = ("agent", "supervisor")
USER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
FILE_VERSION = 1


class AccountError(ValueError):
    """The credentials file or an account in it is unusable; the message says why."""


@dataclass(frozen=True)
class Account:
    user: str
    role: Role
    hash: str


def hasher() -> PasswordHasher:
    # argon2id with the library's defaults (RFC 9106's second recommendation:
    # t=3, 64 MiB, p=4), which it keeps current across releases
    return PasswordHasher()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    if not password.isprintable():
        raise AccountError("the password must not contain control characters")


def _parse(path: Path, raw: str, agent_ids: Collection[str]) -> dict[str, Account]:
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise AccountError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION \
            or not isinstance(data.get("users"), dict):
        raise AccountError(f"{path}: expected {{\"version\": {FILE_VERSION}, \"users\": {{...}}}}")
    out: dict[str, Account] = {}
    for user, entry in data["users"].items():
        where = f"{path}: user {user!r}"
        if not isinstance(user, str) or not USER_ID.match(user):
            raise AccountError(f"{where}: a user id is 1-40 of a-z 0-9 _ - (lower case)")
        if not isinstance(entry, dict):
            raise AccountError(f"{where}: expected {{\"role\": ..., \"hash\": ...}}")
        role, digest = entry.get("role"), entry.get("hash")
        if role not in ROLES:
            raise AccountError(f"{where}: role must be one of {', '.join(ROLES)}")
        if not isinstance(digest, str) or not digest.startswith("$argon2"):
            raise AccountError(f"{where}: 'hash' must be an argon2 hash "
                               "(set it with `hotline desktop passwd`)")
        if role == "agent" and user not in agent_ids:
            raise AccountError(f"{where}: role agent needs a configured agent id")
        out[user] = Account(user=user, role=role, hash=digest)
    return out


def _check_mode(path: Path, st: os.stat_result) -> None:
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise AccountError(f"{path}: readable or writable by others (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 it")


def load_accounts(path: Path, agent_ids: Collection[str]) -> dict[str, Account]:
    try:
        st = path.stat()
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccountError(f"{path}: no such credentials file "
                           "(create it with `hotline desktop passwd USER`)") from None
    except OSError as e:
        raise AccountError(f"{path}: cannot read: {e.strerror}") from None
    _check_mode(path, st)
    return _parse(path, raw, agent_ids)


def set_password(path: Path, user: str, password: str, role: Role,
                 agent_ids: Collection[str]) -> Account:
    """Add or replace one account; the file is rewritten atomically, mode 0600."""
    if not USER_ID.match(user):
        raise AccountError(f"user id {user!r}: 1-40 of a-z 0-9 _ - (lower case)")
    if role == "agent" and user not in agent_ids:
        raise AccountError(f"{user!r} is not a configured agent id; an agent's account "
                           "must be one (or give --role supervisor)")
    check_password(password)
    users: dict[str, Any] = {}
    if path.exists():
        users = {a.user: {"role": a.role, "hash": a.hash}
                 for a in load_accounts(path, agent_ids).values()}
    account = Account(user=user, role=role, hash=hasher().hash(password))
    users[user] = {"role": account.role, "hash": account.hash}
    body = json.dumps({"version": FILE_VERSION, "users": users}, indent=1, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return account


class Accounts:
    """The accounts as the running app sees them: re-read when the file changes.

    A file that became unreadable or invalid keeps the last good accounts in
    use (an operator's typo must not sign every agent out) and says why in
    `problem`."""

    def __init__(self, path: Path, agent_ids: Collection[str]) -> None:
        self.path = path
        self.agent_ids = frozenset(agent_ids)
        self._hasher = hasher()
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}
        self.problem: str | None = None
        # verifying against this for an unknown user costs what a real check costs
        self._dummy = self._hasher.hash("not a password of anyone")
        self.reload()

    def reload(self) -> None:
        try:
            st = self.path.stat()
        except OSError as e:
            self.problem = f"{self.path}: {e.strerror}"
            return
        seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if seen == self._seen:
                return
            try:
                self._accounts = load_accounts(self.path, self.agent_ids)
            except AccountError as e:
                self.problem = str(e)
                return
            self._seen = seen
            self.problem = None

    def get(self, user: str) -> Account | None:
        self.reload()
        return self._accounts.get(user)

    def verify(self, user: str, password: str) -> Account | None:
        """The account if the password is right. Blocking (argon2): run it in a thread."""
        account = self.get(user)
        try:
            self._hasher.verify(account.hash if account else self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return account
