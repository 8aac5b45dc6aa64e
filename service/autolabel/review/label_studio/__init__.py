"""The Label Studio bridge: review requests become Label Studio tasks, annotations become
:class:`~autolabel.core.messages.Feedback`.

* :mod:`~autolabel.review.label_studio.tasks` — pure: the labeling config, a request as a
  task (with the model's prediction), an annotation as a label, a task's bookkeeping.
* :mod:`~autolabel.review.label_studio.client` — Label Studio's HTTP API (aiohttp only).
* :mod:`~autolabel.review.label_studio.bridge` — the loop (``autolabel label-studio``):
  claims from the review queue pushed as tasks, annotations answered through the queue
  (webhook and polling), feedback sent by other reviewers closing tasks.
"""
