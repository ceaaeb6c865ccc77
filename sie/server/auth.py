"""API keys: `SIE_API_KEYS` (comma-separated) guards every route but health, readiness and metrics;
`SIE_ADMIN_KEY` guards load/unload. Keys come only from the environment, never from a config file.
`authorized` is the one guard of the work routes, the engine's and any plugin's (pipelines).

Without SIE_API_KEYS the API is open. Admin routes then need SIE_ADMIN_KEY when it is set; with
neither set they are open too (a local, single-user server).
"""

from __future__ import annotations

import hmac
import os

from fastapi import Request

from sie.server.errors import Draining, Forbidden, Unauthorized


class ApiKeys:
    def __init__(self, keys: list[str], admin_key: str | None) -> None:
        self.keys = [k for k in keys if k]
        self.admin_key = admin_key or None

    @classmethod
    def from_env(cls) -> ApiKeys:
        return cls(os.environ.get("SIE_API_KEYS", "").split(","), os.environ.get("SIE_ADMIN_KEY"))

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    @staticmethod
    def _bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @staticmethod
    def _matches(token: str, keys: list[str]) -> bool:
        return any(hmac.compare_digest(token.encode(), k.encode()) for k in keys)

    def check(self, request: Request) -> None:
        if not self.keys:
            return
        token = self._bearer(request)
        if token is None:
            raise Unauthorized("authorization: missing 'Authorization: Bearer <key>' header", field="authorization")
        if not self._matches(token, self.keys + ([self.admin_key] if self.admin_key else [])):
            raise Unauthorized("authorization: the API key is not valid", field="authorization")

    def check_admin(self, request: Request) -> None:
        if self.admin_key is None:
            self.check(request)
            return
        token = self._bearer(request)
        if token is None:
            raise Unauthorized("authorization: admin routes need 'Authorization: Bearer <admin key>'",
                               field="authorization")
        if not self._matches(token, [self.admin_key]):
            raise Forbidden("authorization: this key may not load or unload models (SIE_ADMIN_KEY)",
                            field="authorization")


async def authorized(request: Request) -> None:  # async: a sync dependency costs a threadpool hop
    """The dependency of every route that takes work: a valid API key, and no new work while draining."""
    request.app.state.keys.check(request)
    if request.app.state.draining:
        raise Draining("server: draining after SIGTERM; send new work to another replica", retry_after=5)
