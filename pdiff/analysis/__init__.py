"""Measuring generated models: accuracy of many parameter vectors at once (`evaluation`), baselines and
memorization measures (`novelty`), and the report with its figures (`report`)."""
