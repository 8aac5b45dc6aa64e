"""``autolabel label-studio``: review requests become Label Studio tasks, submitted
annotations become feedback.

Three loops share one :class:`LabelStudioBridge`:

* **push** — claims from the :class:`~autolabel.review.kafka_queue.ReviewQueue` (best
  first, at most ``max_open_tasks`` held) are imported into the project as tasks with
  the model's prediction as a pre-annotation; the labeling config grows when a request
  brings a label or a kind of record it does not show yet. A claim whose task exists
  already (the bridge restarted, or the request was delivered again) is matched to it by
  ``data.request_id`` instead of making a second task.
* **answers** — a submitted annotation is answered through
  :meth:`ReviewQueue.answer <autolabel.review.kafka_queue.ReviewQueue.answer>` (so the
  feedback echoes the request id and the learner derives audit status and weight from
  it), then the task is marked ``data.status = "sent"``. Annotations arrive by webhook
  (``ANNOTATION_CREATED``/``UPDATED`` to ``/webhook``, when ``webhook_url`` is set) and
  by polling every ``poll_interval_s`` the open tasks that have annotations (Label
  Studio only logs a webhook it could not deliver).
* **feedback** — the feedback topic is read from where it stood when the oldest open task
  was made. Any answer to an open task's request, from another reviewer tool or from this
  bridge before a crash, closes the task (``answered elsewhere``, or ``sent``): it is
  taken out of Label Studio's labeling stream and its claim settled, never answered twice.

Idempotency: the state is Label Studio's. Only ``open`` tasks are ever answered; a task
becomes ``sent`` right after its feedback is acknowledged; the window between the two
(a crash) is closed at the next start by the feedback read, which finds the answer on the
topic. Within a process a request is answered once (webhook and poll race for it under
one guard). The learner, besides, learns one answer per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from autolabel.core.codec import Rejected, decode
from autolabel.core.messages import Feedback, utc_now
from autolabel.kafka.clients import make_consumer
from autolabel.review.kafka_queue import NotClaimed
from autolabel.review.label_studio.client import LabelStudioClient, LabelStudioError
from autolabel.review.label_studio.tasks import (
    LabelingView,
    TaskRef,
    TaskStatus,
    parse_config,
    task_for,
)
from autolabel.review.queue import Claim
from autolabel.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
WEBHOOK_HEADER = "X-Autolabel-Webhook"
PUSH_BATCH = 50
LOOKUP_BATCH = 50
ANSWERED_MEMORY = 100_000
RETRY_S = 2.0


class ReviewSource(Protocol):
    """What the bridge needs of a review queue
    (:class:`~autolabel.review.kafka_queue.ReviewQueue`)."""

    async def next(self, timeout_s: float = 1.0) -> Claim | None: ...
    async def answer(self, claim: Claim, label: str) -> Feedback: ...
    async def settle(self, claim: Claim) -> None: ...
    def release(self, claim: Claim) -> None: ...
    def known_labels(self) -> list[str]: ...


class BridgeError(RuntimeError):
    """The bridge cannot work with this Label Studio project; the message says why."""


@dataclass
class BridgeStats:
    """What the bridge did since it started (``GET /healthz`` shows it)."""

    project_id: int = 0
    open_tasks: int = 0
    claims: int = 0
    tasks_created: int = 0
    tasks_adopted: int = 0
    answers_sent: int = 0
    settled: int = 0
    closed_elsewhere: int = 0
    webhooks: int = 0
    polls: int = 0
    errors: int = 0


def webhook_secret(token: str) -> str:
    """The value of :data:`WEBHOOK_HEADER` the bridge registers with Label Studio and
    expects back: derived from the API token, so it is stable across restarts and does
    not reveal the token.

    >>> len(webhook_secret("abc")), webhook_secret("abc") == webhook_secret("abd")
    (32, False)
    """
    return hmac.new(token.encode(), b"autolabel-label-studio-webhook", hashlib.sha256).hexdigest()[
        :32
    ]


class LabelStudioBridge:
    """One Label Studio project fed from one review queue.

    Parameters
    ----------
    settings
        The deployment's settings; ``settings.label_studio`` is the bridge's section.
    client
        Label Studio's API.
    queue
        The review queue, started.
    """

    def __init__(self, settings: Settings, client: LabelStudioClient, queue: ReviewSource) -> None:
        self.settings = settings
        self.ls = settings.label_studio
        self.client = client
        self.queue = queue
        self.classes = settings.model.class_set
        self.view = LabelingView(free_labels=not self.classes)
        self.project_id = 0
        self.stats = BridgeStats()
        self.ready = asyncio.Event()
        self._tasks: dict[str, int] = {}  # request id -> id of its open task
        self._claims: dict[str, Claim] = {}  # request id -> claim held for an open task
        self._answered: OrderedDict[str, str] = OrderedDict()  # on the feedback topic -> who
        self._sent: OrderedDict[str, None] = OrderedDict()  # answered by this process
        self._unmarked: dict[str, tuple[int, TaskStatus, dict[str, Any]]] = {}
        self._busy: set[str] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._max_bytes = settings.labeler.max_output_bytes * 2
        self._provisional = False

    # ------------------------------------------------------------------ start

    async def prepare(self) -> None:
        """Find or create the project, register the webhook, index the open tasks, and
        read the feedback given since the oldest of them was made."""
        title = self.ls.project_title
        labels = self.classes | set(self.queue.known_labels())
        wanted = LabelingView.for_requests([], labels, free_labels=not self.classes)
        project = await self.client.find_project(title)
        if project is None:
            project = await self.client.create_project(
                title,
                wanted.config(),
                description="Review requests from autolabel: pick the right label and submit."
                " Tasks are added and closed by the autolabel label-studio bridge.",
                enable_empty_annotation=False,
                show_collab_predictions=True,
            )
            self.view = wanted
            self._provisional = True  # shows text until the first requests say what to show
            log.info("label-studio: created project %r (id %s)", title, project["id"])
        else:
            current = parse_config(str(project.get("label_config", "")))
            if current is None:
                raise BridgeError(
                    f"Label Studio project {title!r} (id {project['id']}) has a labeling config"
                    " the bridge did not write; choose another AUTOLABEL_LABEL_STUDIO__"
                    "PROJECT_TITLE or delete that project"
                )
            self.view = current
            wanted = LabelingView.for_requests([], labels, free_labels=False, base=current)
            log.info("label-studio: reusing project %r (id %s)", title, project["id"])
        self.project_id = int(project["id"])
        self.stats.project_id = self.project_id
        await self._show(wanted)
        if self.ls.webhook_url:
            await self.client.ensure_webhook(
                self.project_id,
                self.ls.webhook_url,
                WEBHOOK_ACTIONS,
                {WEBHOOK_HEADER: webhook_secret(self.ls.token_value())},
            )
        open_tasks = [
            ref
            for task in await self.client.tasks_by_status(self.project_id, TaskStatus.OPEN)
            if (ref := TaskRef.from_json(task)) is not None
        ]
        self._tasks = {ref.request_id: ref.id for ref in open_tasks}
        await self._start_feedback(open_tasks)
        self.stats.open_tasks = len(self._tasks)
        log.info("label-studio: %d open tasks in project %s", len(self._tasks), self.project_id)

    async def _start_feedback(self, open_tasks: Sequence[TaskRef]) -> None:
        """Read the feedback topic from where it stood when the oldest open task was made
        up to its end now, closing the tasks answered meanwhile."""
        consumer = make_consumer(
            self.settings.kafka,
            group_id=None,
            max_partition_fetch_bytes=max(1_048_576, self._max_bytes),
        )
        await consumer.start()
        self._consumer = consumer
        topic = self.settings.topics.feedback
        await consumer.topics()  # metadata
        partitions = sorted(consumer.partitions_for_topic(topic) or {0})
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            starts = [
                t.feedback_from[tp.partition] for t in open_tasks if tp.partition in t.feedback_from
            ]
            if starts:
                consumer.seek(tp, min(starts))
            else:
                consumer.seek(tp, ends[tp])
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                return
            batch = await consumer.getmany(*behind, timeout_ms=1000)
            if not batch:
                return  # nothing more comes (an end offset can overshoot with gaps)
            await self._feedback_batch(batch)

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        """Prepare, then push, poll and read feedback until ``stop`` is set."""
        runner: web.AppRunner | None = None
        loops: list[asyncio.Task[None]] = []
        stopping = asyncio.create_task(stop.wait())
        try:
            await self.prepare()
            runner = await self._serve()
            loops = [
                asyncio.create_task(self._push_loop(), name="ls-push"),
                asyncio.create_task(self._poll_loop(), name="ls-poll"),
                asyncio.create_task(self._feedback_loop(), name="ls-feedback"),
            ]
            self.ready.set()
            done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping:
                    task.result()  # a loop that ended on its own raised: say why
        finally:
            stopping.cancel()
            for task in [*loops, *self._background]:
                task.cancel()
            for task in [*loops, *self._background]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if runner is not None:
                await runner.cleanup()
            if self._consumer is not None:
                await self._consumer.stop()

    async def _serve(self) -> web.AppRunner:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/webhook", self._webhook)
        app.router.add_get("/healthz", self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.ls.listen_host, self.ls.listen_port).start()
        log.info(
            "label-studio: listening on %s:%d (/webhook, /healthz); webhook %s",
            self.ls.listen_host,
            self.ls.listen_port,
            self.ls.webhook_url or "not registered (polling only)",
        )
        return runner

    async def _health(self, request: web.Request) -> web.Response:
        self.stats.open_tasks = len(self._tasks)
        self.stats.claims = len(self._claims)
        return web.json_response(asdict(self.stats))

    async def _webhook(self, request: web.Request) -> web.Response:
        """Label Studio's webhook: a hint that a task has a new annotation. The task is read
        back from Label Studio before anything is answered; the payload is not trusted."""
        secret = webhook_secret(self.ls.token_value())
        if not hmac.compare_digest(request.headers.get(WEBHOOK_HEADER, ""), secret):
            return web.json_response({"error": "unknown sender"}, status=403)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        annotation = body.get("annotation") if isinstance(body, dict) else None
        task_id = annotation.get("task") if isinstance(annotation, dict) else None
        if body.get("action") in WEBHOOK_ACTIONS and isinstance(task_id, int):
            self.stats.webhooks += 1
            job = asyncio.create_task(self._check_task(task_id))
            self._background.add(job)
            job.add_done_callback(self._background.discard)
        return web.json_response({"ok": True})  # at once: Label Studio waits 1 s at most

    async def _check_task(self, task_id: int) -> None:
        try:
            task = await self.client.task(task_id)
            ref = TaskRef.from_json(task) if task is not None else None
            if ref is not None and task is not None and task.get("project") == self.project_id:
                await self._answer(ref)
        except LabelStudioError as exc:
            self.stats.errors += 1
            log.warning("label-studio: webhook for task %s: %s (polls retry)", task_id, exc)

    # ------------------------------------------------------------------ push

    async def _push_loop(self) -> None:
        while True:
            batch: list[Claim] = []
            claim = await self.queue.next(timeout_s=1.0)
            while claim is not None:
                batch.append(claim)
                if len(batch) >= PUSH_BATCH:
                    break
                claim = await self.queue.next(timeout_s=0.0)
            if not batch:
                continue
            try:
                await self.push(batch)
            except LabelStudioError as exc:
                self.stats.errors += 1
                log.warning("label-studio: could not add tasks (retrying): %s", exc)
                for claim in batch:
                    if claim.request_id not in self._claims:
                        self.queue.release(claim)
                await asyncio.sleep(RETRY_S)

    async def push(self, claims: Sequence[Claim]) -> None:
        """Make a task for each claim, or match it to its task made before."""
        fresh: list[Claim] = []
        for claim in claims:
            rid = claim.request_id
            if rid in self._answered:
                await self._settle(claim)
            elif rid in self._tasks:
                self._claims[rid] = claim
                self.stats.tasks_adopted += 1
            else:
                fresh.append(claim)
        existing: dict[str, TaskRef] = {}
        for start in range(0, len(fresh), LOOKUP_BATCH):
            ids = [c.request_id for c in fresh[start : start + LOOKUP_BATCH]]
            for task in await self.client.tasks_by_request(self.project_id, ids):
                ref = TaskRef.from_json(task)
                if ref is not None and ref.request_id not in existing:
                    existing[ref.request_id] = ref
        new: list[Claim] = []
        annotated: list[TaskRef] = []
        for claim in fresh:
            ref = existing.get(claim.request_id)
            if ref is None:
                new.append(claim)
            elif ref.status == TaskStatus.OPEN:
                self._tasks[ref.request_id] = ref.id
                self._claims[ref.request_id] = claim
                self.stats.tasks_adopted += 1
                if ref.annotations:
                    annotated.append(ref)
            else:  # answered by this bridge before, or elsewhere: never twice
                await self._settle(claim)
        if new:
            await self._show(
                LabelingView.for_requests(
                    [c.request for c in new],
                    [*self.queue.known_labels(), *self.view.labels],
                    free_labels=not self.classes,
                    base=None if self._provisional else self.view,
                )
            )
            positions = await self._feedback_positions()
            tasks = [
                task_for(
                    c.request,
                    self.view,
                    partition=c.partition,
                    offset=c.offset,
                    feedback_from=positions,
                )
                for c in new
            ]
            task_ids = await self.client.import_tasks(self.project_id, tasks)
            self._provisional = False
            for claim, task_id in zip(new, task_ids, strict=True):
                self._tasks[claim.request_id] = task_id
                self._claims[claim.request_id] = claim
            self.stats.tasks_created += len(new)
        self.stats.open_tasks = len(self._tasks)
        for ref in annotated:
            await self._answer(ref)

    async def _show(self, wanted: LabelingView) -> None:
        """Grow the project's labeling config to show ``wanted`` too (never shrinks, except
        the objects of the config a new project starts with, before its first task)."""
        if self._provisional and wanted.kinds != self.view.kinds:
            kinds, anchor = wanted.kinds, None
        elif self.view.covers(wanted):
            return
        else:  # the controls stay on the object they named: annotations refer to it
            kinds, anchor = self.view.kinds | wanted.kinds, self.view.target
        merged = LabelingView(
            kinds,
            tuple(sorted(set(self.view.labels) | set(wanted.labels))),
            self.view.free_labels or wanted.free_labels,
            anchor,
        )
        await self.client.update_project(self.project_id, label_config=merged.config())
        log.info(
            "label-studio: labeling config now shows %s with labels %s",
            ", ".join(sorted(merged.kinds)),
            ", ".join(merged.labels) or "(none yet)",
        )
        self.view = merged

    async def _feedback_positions(self) -> dict[int, int]:
        consumer = self._consumer
        if consumer is None:
            return {}
        out = {}
        for tp in consumer.assignment():
            with contextlib.suppress(KafkaError, AssertionError):
                out[tp.partition] = await consumer.position(tp)
        return out

    # ------------------------------------------------------------------ answers

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ls.poll_interval_s)
            try:
                await self.poll()
            except LabelStudioError as exc:
                self.stats.errors += 1
                log.warning("label-studio: poll failed (retrying): %s", exc)

    async def poll(self) -> None:
        """Answer every open task with a submitted annotation; retry unfinished marks."""
        self.stats.polls += 1
        for rid, (task_id, status, extra) in list(self._unmarked.items()):
            if await self._mark(task_id, status, extra):
                self._unmarked.pop(rid, None)
        tasks = await self.client.tasks_by_status(self.project_id, TaskStatus.OPEN, annotated=True)
        for task in tasks:
            ref = TaskRef.from_json(task)
            if ref is not None:
                await self._answer(ref)

    async def _answer(self, ref: TaskRef) -> None:
        """Send the feedback for a task's annotation, once; then mark the task ``sent``."""
        rid = ref.request_id
        if ref.status != TaskStatus.OPEN or rid in self._busy or rid in self._sent:
            return
        given = ref.answer()
        claim = self._claims.get(rid)
        if given is None or claim is None:
            return  # no label yet, or not this process's request (yet): polled again later
        if rid in self._answered:
            await self._close(rid, self._answered[rid])
            return
        annotation_id, label = given
        if self.classes and label not in self.classes:
            log.warning(
                "label-studio: task %s answered %r, not one of AUTOLABEL_MODEL__CLASSES;"
                " not sent (change the annotation)",
                ref.id,
                label,
            )
            return
        self._busy.add(rid)
        try:
            try:
                await self.queue.answer(claim, label)
            except NotClaimed:
                self._claims.pop(rid, None)
                return
            self._remember(self._sent, rid)
            self._claims.pop(rid, None)
            self._tasks.pop(rid, None)
            self.stats.answers_sent += 1
            self.stats.open_tasks = len(self._tasks)
            extra = {"annotation": annotation_id, "label": label, "sent_at": utc_now().isoformat()}
            if not await self._mark(ref.id, TaskStatus.SENT, extra):
                self._unmarked[rid] = (ref.id, TaskStatus.SENT, extra)
        finally:
            self._busy.discard(rid)

    async def _mark(
        self,
        task_id: int,
        status: TaskStatus,
        extra: dict[str, Any],
        *,
        done: bool = False,
    ) -> bool:
        """Set a task's ``data.status`` (and note why in ``meta.autolabel.outcome``);
        ``done`` also takes it out of the labeling stream. False when Label Studio could
        not be told (tried again at the next poll)."""
        try:
            task = await self.client.task(task_id)
            if task is None:
                return True  # deleted in Label Studio: nothing to mark
            data = dict(task.get("data") or {})
            meta = dict(task.get("meta") or {})
            ours = dict(meta.get("autolabel") or {})
            ours["outcome"] = {"status": status.value, **extra}
            fields: dict[str, Any] = {
                "data": {**data, "status": status.value},
                "meta": {**meta, "autolabel": ours},
            }
            if done:
                fields["is_labeled"] = True
            await self.client.update_task(task_id, **fields)
            return True
        except LabelStudioError as exc:
            self.stats.errors += 1
            log.warning("label-studio: could not mark task %s %s: %s", task_id, status, exc)
            return False

    async def _settle(self, claim: Claim) -> None:
        self._claims.pop(claim.request_id, None)
        with contextlib.suppress(NotClaimed):
            await self.queue.settle(claim)
            self.stats.settled += 1

    # ------------------------------------------------------------------ feedback

    async def _feedback_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:
                log.warning("label-studio: reading feedback failed (retrying): %r", exc)
                await asyncio.sleep(RETRY_S)
                continue
            await self._feedback_batch(batch)

    async def _feedback_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for messages in batch.values():
            for message in messages:
                feedback = decode(Feedback, message.value, max_bytes=self._max_bytes)
                if isinstance(feedback, Rejected) or feedback.request_id is None:
                    continue
                await self._seen(feedback)

    async def _seen(self, feedback: Feedback) -> None:
        """An answer on the feedback topic: close the request's open task unless this
        process sent it."""
        rid = feedback.request_id
        assert rid is not None
        if rid in self._sent or rid in self._busy:
            return
        who = feedback.reviewer or ""
        self._remember(self._answered, rid, who)
        if rid in self._tasks:
            await self._close(rid, who)

    async def _close(self, rid: str, who: str) -> None:
        """The request of an open task was answered on the feedback topic: by this bridge
        before a restart (``sent``) or by another reviewer (``answered elsewhere``)."""
        task_id = self._tasks.pop(rid, None)
        self.stats.open_tasks = len(self._tasks)
        claim = self._claims.pop(rid, None)
        if claim is not None:
            await self._settle(claim)
        if task_id is None:
            return
        ours = who == self.ls.reviewer
        status = TaskStatus.SENT if ours else TaskStatus.ANSWERED_ELSEWHERE
        if not ours:
            self.stats.closed_elsewhere += 1
        extra = {"reviewer": who, "seen_at": utc_now().isoformat()}
        if not await self._mark(task_id, status, extra, done=True):
            self._unmarked[rid] = (task_id, status, extra)

    @staticmethod
    def _remember(memory: OrderedDict[str, Any], rid: str, value: Any = None) -> None:
        memory[rid] = value
        memory.move_to_end(rid)
        while len(memory) > ANSWERED_MEMORY:
            memory.popitem(last=False)


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    """Run the bridge until ``stop`` is set (``autolabel label-studio``)."""
    from autolabel.review.kafka_queue import ReviewQueue

    ls = settings.label_studio
    client = LabelStudioClient(ls.url, ls.token_value(), timeout_s=ls.request_timeout_s)
    queue = ReviewQueue(
        settings, reviewer=ls.reviewer, group_id=ls.group_id, buffer_size=ls.max_open_tasks
    )
    await queue.start()
    try:
        await LabelStudioBridge(settings, client, queue).run(stop)
    finally:
        await queue.stop()
        await client.close()
