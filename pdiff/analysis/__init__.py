"""Measuring generated models: accuracy of many parameter vectors at once (`evaluation`), the registry of
evaluated sets (`sets`) with the no-learning baselines (`baselines`) and the decoder sets (`decoded`),
memorization measures (`novelty`), and the report with its figures (`report`)."""
