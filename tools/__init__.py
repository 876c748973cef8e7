"""Experiment tooling around the pipeline (not the method): ablation grids as DVC experiments (`ablations`),
presets (`presets`), offline `dvc plots diff` figures (`plots_diff`), running dvc (`dvc_runner`), the
benchmarks (`bench`) and working copies of the project with the subprocesses run in them (`workcopy`)."""
