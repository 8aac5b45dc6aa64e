"""The pure packages stay pure: importing them loads no Kafka client, Faust or Prometheus."""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "autolabel.core",
    "autolabel.core.messages",
    "autolabel.core.codec",
    "autolabel.core.signing",
    "autolabel.core.requests",
    "autolabel.core.labeling",
    "autolabel.core.outputs",
    "autolabel.core.snapshot",
    "autolabel.core.tuples",
    "autolabel.model.classifier",
    "autolabel.model.factory",
    "autolabel.model.fast_path",
    "autolabel.model.fast_softmax",
    "autolabel.model.finite",
    "autolabel.trust.controller",
    "autolabel.trust.policy",
    "autolabel.trust.risk",
    "autolabel.trust.drift",
    "autolabel.tools.evaluation",
    "autolabel.review",
    "autolabel.review.web.sessions",
    "autolabel.review.web.view",
    "autolabel.review.web.desk",
    "autolabel.review.queue",
    "autolabel.review.label_studio",
    "autolabel.review.label_studio.tasks",
    "autolabel.settings",
]
IO = ("aiokafka", "kafka", "faust", "mode", "prometheus_client", "aiohttp")


def test_pure_packages_import_no_io_library() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in PURE)
        + f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {IO!r})\n"
        + "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "", f"pure modules pulled in: {result.stdout.strip()}"


def test_the_check_would_notice_an_io_import() -> None:
    code = "import sys, autolabel.worker.metrics; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"
