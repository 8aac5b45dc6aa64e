"""Label Studio's HTTP API, as much of it as the bridge uses (aiohttp; no SDK).

Authenticates with a user's legacy API token (``Authorization: Token ...``). Every call
raises :class:`LabelStudioError` on failure, with the status and Label Studio's own
explanation; ``retriable`` says whether trying again later may help (the server was
unreachable, timed out or failed with a 5xx). The token never appears in an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import quote

import aiohttp

PAGE_SIZE = 100


class LabelStudioError(RuntimeError):
    """A call to Label Studio failed; ``status`` is 0 when nothing answered."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retriable(self) -> bool:
        return self.status == 0 or self.status >= 500 or self.status == 429


def _filter(field: str, operator: str, kind: str, value: object) -> dict[str, Any]:
    return {"filter": f"filter:tasks:{field}", "operator": operator, "type": kind, "value": value}


class LabelStudioClient:
    """One Label Studio server, one token.

    Parameters
    ----------
    url
        The server's address, e.g. ``http://localhost:8080``.
    token
        A user's legacy API token.
    timeout_s
        Longest wait for one call.
    """

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Token {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r}, <token hidden>)"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        expect: Sequence[int] = (200, 201, 204),
        missing_ok: bool = False,
    ) -> Any:
        """One call; the decoded JSON answer (None when empty, or with ``missing_ok`` when
        the answer is 404 Not Found)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._session.request(
                method, self.url + path, data=data, headers=headers
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise LabelStudioError(
                f"Label Studio at {self.url} did not answer {method} {path}: {exc!r}"
            ) from None
        if missing_ok and status == 404:
            return None
        if status not in expect:
            raise LabelStudioError(
                f"Label Studio answered {method} {path} with {status}: {_reason(text)}",
                status=status,
            )
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise LabelStudioError(
                f"Label Studio answered {method} {path} with something not JSON: {text[:200]!r}",
                status=status,
            ) from None

    # ------------------------------------------------------------------ projects

    async def find_project(self, title: str) -> dict[str, Any] | None:
        """The oldest project with exactly this title, or None."""
        page = 1
        while True:
            answer = await self.request(
                "GET", f"/api/projects/?title={quote(title)}&page={page}&page_size={PAGE_SIZE}"
            )
            found = sorted(
                (p for p in answer.get("results", []) if p.get("title") == title),
                key=lambda p: int(p["id"]),
            )
            if found:
                return dict(found[0])
            if not answer.get("next"):
                return None
            page += 1

    async def create_project(self, title: str, label_config: str, **fields: Any) -> dict[str, Any]:
        return dict(
            await self.request(
                "POST", "/api/projects/", {"title": title, "label_config": label_config, **fields}
            )
        )

    async def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return dict(await self.request("PATCH", f"/api/projects/{project_id}/", fields))

    # ------------------------------------------------------------------ tasks

    async def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create tasks (with their predictions) in one call; their ids, in order."""
        answer = await self.request(
            "POST", f"/api/projects/{project_id}/import?return_task_ids=true", list(tasks)
        )
        ids = answer.get("task_ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio's import answer has no task ids: {answer!r}")
        return [int(i) for i in ids]

    async def tasks(
        self,
        project_id: int,
        filters: Sequence[Mapping[str, Any]] = (),
        *,
        conjunction: str = "and",
        annotations: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The project's tasks that pass ``filters`` (data manager filters), oldest first;
        with ``annotations``, each with its annotations."""
        query = {
            "filters": {"conjunction": conjunction, "items": list(filters)},
            "ordering": ["tasks:id"],
        }
        fields = "&fields=all" if annotations else ""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self.request(
                "GET",
                f"/api/tasks/?project={project_id}&page={page}&page_size={PAGE_SIZE}{fields}"
                f"&resolve_uri=false&query={quote(json.dumps(query))}",
                missing_ok=True,  # a page past the end
            )
            batch = answer.get("tasks", []) if isinstance(answer, dict) else []
            out.extend(batch)
            total = answer.get("total", 0) if isinstance(answer, dict) else 0
            if not batch or len(out) >= total or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out
            page += 1

    async def tasks_by_status(
        self, project_id: int, status: str, *, annotated: bool | None = None
    ) -> list[dict[str, Any]]:
        """Tasks whose ``data.status`` is ``status``; only those with (True) or without
        (False) annotations when ``annotated`` is set. Annotations included."""
        filters = [_filter("data.status", "equal", "String", status)]
        if annotated is not None:
            filters.append(
                _filter("total_annotations", "greater" if annotated else "equal", "Number", 0)
            )
        return await self.tasks(project_id, filters, annotations=True)

    async def tasks_by_request(
        self, project_id: int, request_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Tasks whose ``data.request_id`` is one of ``request_ids``; annotations included."""
        if not request_ids:
            return []
        filters = [_filter("data.request_id", "equal", "String", rid) for rid in request_ids]
        return await self.tasks(project_id, filters, conjunction="or", annotations=True)

    async def task(self, task_id: int) -> dict[str, Any] | None:
        """One task with its annotations; None when it does not exist (any more)."""
        answer = await self.request("GET", f"/api/tasks/{task_id}/", missing_ok=True)
        return dict(answer) if isinstance(answer, dict) and "id" in answer else None

    async def update_task(self, task_id: int, **fields: Any) -> dict[str, Any]:
        return dict(await self.request("PATCH", f"/api/tasks/{task_id}/", fields))

    async def delete_task(self, task_id: int) -> None:
        await self.request("DELETE", f"/api/tasks/{task_id}/", missing_ok=True)

    async def annotate(self, task_id: int, result: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Submit an annotation as this token's user (what a reviewer's Submit does)."""
        return dict(
            await self.request("POST", f"/api/tasks/{task_id}/annotations/", {"result": result})
        )

    # ------------------------------------------------------------------ webhooks

    async def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        answer = await self.request("GET", f"/api/webhooks/?project={project_id}")
        return [dict(w) for w in answer] if isinstance(answer, list) else []

    async def ensure_webhook(
        self, project_id: int, url: str, actions: Sequence[str], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """The project's webhook to ``url``, created or updated to these actions and headers."""
        body = {
            "project": project_id,
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": list(actions),
            "headers": dict(headers),
            "is_active": True,
        }
        for hook in await self.webhooks(project_id):
            if hook.get("url") == url and hook.get("project") == project_id:
                return dict(await self.request("PATCH", f"/api/webhooks/{hook['id']}/", body))
        return dict(await self.request("POST", "/api/webhooks/", body))


def _reason(text: str) -> str:
    """Label Studio's explanation in an error answer, short."""
    try:
        answer = json.loads(text)
    except ValueError:
        return text[:300] or "(empty answer)"
    if isinstance(answer, dict):
        for key in ("validation_errors", "detail"):
            if answer.get(key):
                return json.dumps(answer[key])[:300]
    return text[:300]
