"""A small client for the few Label Studio API endpoints the service needs.

It speaks both kinds of Label Studio tokens: a legacy API token (sent as
``Authorization: Token ...``) and a personal access token, which is a refresh JWT
exchanged at ``/api/token/refresh`` for a short-lived access token (sent as
``Bearer``) and exchanged again when Label Studio answers 401.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx

from .errors import LabelStudioWatsonxError


class LabelStudioError(LabelStudioWatsonxError):
    """Label Studio could not be reached or refused a request."""


def is_personal_access_token(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts)


class LabelStudio:
    """Label Studio's API at ``url`` with ``token``; safe to share between threads."""

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._access: str | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def _auth_header(self, renew: bool = False) -> dict[str, str]:
        if not is_personal_access_token(self._token):
            return {"Authorization": f"Token {self._token}"}
        with self._lock:
            if self._access is None or renew:
                response = self._http.post("/api/token/refresh", json={"refresh": self._token})
                if response.status_code != 200:
                    raise LabelStudioError(
                        f"Label Studio refused the personal access token ({response.status_code});"
                        " check LABEL_STUDIO_API_KEY"
                    )
                self._access = response.json().get("access")
            return {"Authorization": f"Bearer {self._access}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; the JSON answer, or ``LabelStudioError`` saying what failed."""
        try:
            response = self._http.request(method, path, headers=self._auth_header(), **kwargs)
            if response.status_code == 401 and is_personal_access_token(self._token):
                response = self._http.request(
                    method, path, headers=self._auth_header(renew=True), **kwargs
                )
        except httpx.HTTPError as error:
            raise LabelStudioError(f"Label Studio at {self.url} is unreachable: {error}") from None
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio answered {response.status_code} to {method} {path}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(f"Label Studio sent no JSON for {method} {path}") from None

    def user_email(self, user_id: int) -> str | None:
        user = self.request("GET", f"/api/users/{int(user_id)}")
        return user.get("email") if isinstance(user, dict) else None

    def project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{int(project_id)}")

    def tasks(self, project_id: int, page_size: int = 100) -> Iterator[dict]:
        """Every task of a project with its annotations and predictions, page by page."""
        page = 1
        while True:
            try:
                answer = self.request(
                    "GET", "/api/tasks",
                    params={"project": int(project_id), "page": page, "page_size": page_size,
                            "fields": "all"},
                )  # fmt: skip
            except LabelStudioError as error:
                if page > 1 and "404" in str(error):
                    return  # past the last page
                raise
            tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
            if not tasks:
                return
            yield from tasks
            if len(tasks) < page_size:
                return
            page += 1
