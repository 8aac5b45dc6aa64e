"""Online models: River pipelines per record kind (:mod:`.factory`), the classifier the
labeler predicts with and the learner teaches (:mod:`.classifier`), and the numpy batch
path of the default softmax (:mod:`.fast_softmax`). Pure: no I/O."""
