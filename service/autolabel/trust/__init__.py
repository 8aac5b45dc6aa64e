"""Trust: deciding what may be auto-accepted. Certified thresholds (:mod:`.risk`), drift
detection (:mod:`.drift`), the acceptance policies (:mod:`.policy`, :mod:`.certified`)
and the learner's core (:mod:`.learning`). Pure: no I/O, no clocks."""
