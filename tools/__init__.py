"""Experiment tooling around the pipeline (not the method): ablation grids as DVC experiments (`ablations`),
presets (`presets`), offline `dvc plots` pages and PNGs (`offline_plots`; headless Chromium in `browser`),
running dvc (`dvc_runner`), the benchmarks (`bench`) and working copies of the project with the subprocesses run
in them (`workcopy`). Every command-line tool runs as ``python -m tools.<name>`` from the repository root (the
Makefile's targets do), with ``--help`` for its options."""
