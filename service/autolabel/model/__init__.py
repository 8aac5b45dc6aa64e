"""Online models: River pipelines per record kind (:mod:`.factory`), the classifier the
labeler predicts with and the learner teaches (:mod:`.classifier`), the default tabular
pipeline one example at a time on River's own state (:mod:`.fast_path`), the numpy batch
path of its predictions (:mod:`.fast_softmax`), and the check that learning left a model
finite (:mod:`.finite`). Pure: no I/O."""
