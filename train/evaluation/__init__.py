"""The three modes of ``python -m train.evaluate`` (the command line: :mod:`train.evaluate`),
each a small function over the one scorer of :mod:`train.metrics`:

* :func:`~train.evaluation.embeddings.evaluate_embeddings`: a saved embeddings file (numpy
  only; :mod:`train.evaluation.embeddings` defines the file format);
* :func:`~train.evaluation.encoders.evaluate_encoders`: a split embedded by two encoders,
  checkpoints or exported artifacts, scored as training validates;
* :func:`~train.evaluation.bundle.evaluate_bundle`: a split localized through the device SDK
  against a bundle, its candidates ranked and summarized.
"""
