"""The pure core shared by the service and the offline tools: the message contract
(:mod:`.messages`), bytes ↔ messages with a reason for every rejection (:mod:`.codec`)
and the labeler's batch routing (:mod:`.labeling`). No I/O: nothing here imports a
Kafka client, Faust or Prometheus (a test keeps it so)."""
