"""The "naive" baseline: the tutorial Faust design, one event at a time.

A Faust agent that, for every event, decodes the record, predicts it with the
service's default River model and ``await``s a ``topic.send`` of the label:

    python bench/naive_faust_app.py worker -l info

Configured by environment variables (``bench/throughput.py`` sets them):
``BENCH_BOOTSTRAP``, ``BENCH_APP_ID``, ``BENCH_IN_TOPIC``, ``BENCH_OUT_TOPIC``,
``BENCH_PARTITIONS``, ``BENCH_WARMUP`` (JSONL of ``{"features": ..., "label": ...}``
lines the model learns before the worker starts) and ``BENCH_READY`` (a file
written once the agent has been assigned its partitions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faust
import orjson

from autolabel.core.messages import Record
from autolabel.model.classifier import Prediction
from autolabel.model.factory import build_model
from autolabel.settings import ModelSettings

ENV = os.environ
PARTITIONS = int(ENV.get("BENCH_PARTITIONS", "3"))
READY = Path(ENV["BENCH_READY"])

# The same default pipeline the service builds, trained on the same warm-up examples.
model = build_model("features", ModelSettings())
for line in Path(ENV["BENCH_WARMUP"]).read_bytes().splitlines():
    example = orjson.loads(line)
    model.learn_one(example["features"], example["label"])

app = faust.App(
    ENV["BENCH_APP_ID"],
    broker=f"kafka://{ENV['BENCH_BOOTSTRAP']}",
    broker_session_timeout=10.0,  # Tansu: group joins stall for ~30 s with the defaults
    broker_rebalance_timeout=10.0,
    topic_partitions=PARTITIONS,
    store="memory://",
    autodiscover=False,
    web_enabled=False,
    producer_acks=-1,
)
records = app.topic(
    ENV["BENCH_IN_TOPIC"], key_serializer="raw", value_serializer="raw", partitions=PARTITIONS
)
labels = app.topic(
    ENV["BENCH_OUT_TOPIC"], key_serializer="raw", value_serializer="raw", partitions=PARTITIONS
)


@app.agent(records)
async def label(stream: Any) -> None:
    async for event in stream.events():
        record = Record.model_validate_json(event.value)
        prediction = Prediction.from_proba(model.predict_proba_one(dict(record.features or {})))
        value = orjson.dumps(
            {
                "id": record.id,
                "label": prediction.label if prediction else None,
                "confidence": prediction.confidence if prediction else None,
            }
        )
        await labels.send(key=event.key, value=value)


announced = False


@app.timer(0.1)
async def announce_ready() -> None:
    """Tell the benchmark when the agent owns partitions (then it may freeze us)."""
    if not announced and app.consumer.assignment():
        announce()


def announce() -> None:
    global announced
    READY.write_text(str(os.getpid()))
    announced = True


if __name__ == "__main__":
    app.main()
