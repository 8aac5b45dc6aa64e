"""The web review page: ``autolabel review-server``, a server of its own for people.

Reviewers open a page, sign in with the team's token and their name, and answer review
requests with the keyboard; every answer is a correct
:class:`~autolabel.core.messages.Feedback` sent through
:class:`~autolabel.review.kafka_queue.ReviewQueue`, which commits only what was answered.

**Why a separate command and not a page on the worker.** The worker's HTTP port is the
ops surface (``/metrics``, ``/healthz``, ``/readyz``): scraped by Prometheus, probed by
Kubernetes, usually reachable only inside the cluster, with no sign-in. A review page
needs the opposite: reachable by people (often through an ingress with TLS), behind a
credential, with sessions and CSRF protection. Keeping the two apart means reviewers'
traffic and credentials never touch the ops port, a busy review team never competes
with the labeler's event loop, and the page can be deployed, scaled and restarted
without touching the workers. The worker also has no consumer of the review topic to
serve a page from: reviewing is a consumer group of its own (``<app_id>-reviewers``,
shared with every other reviewer tool), which this server joins.

**One reviewer, one queue.** Each signed-in name gets its own ``ReviewQueue`` (a member
of the reviewers' group), so every answer carries the name of whoever gave it and
reviewers never see the same request. A consequence of Kafka's groups: at most as many
reviewers read at once as the review topic has partitions; the others see an empty
queue until one leaves (a reviewer whose page makes no request for
``AUTOLABEL_REVIEW__IDLE_TIMEOUT_S`` leaves by itself).

Modules: :mod:`.sessions` (token, sessions, CSRF, throttling; pure), :mod:`.view` (what
the page shows of a request; pure), :mod:`.desk` (one reviewer's screen: undo window,
skip), :mod:`.server` (the aiohttp app and its routes), ``static/`` (the page: plain
HTML, CSS and JavaScript, no build step, nothing loaded from elsewhere).
"""
