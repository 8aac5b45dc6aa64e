"""The worker process: the Faust app (:mod:`.app`) hosting the labeler hot path
(:mod:`.labeler`), the learner, the HTTP ops surface and the Prometheus metrics
(:mod:`.metrics`)."""
