"""Task-conditioned generation: binary tasks defined by class codes (`codes`), per-task heads trained on cached
features of the frozen base model (`heads`), and the per-task evaluation with its no-training baselines
(`evaluation`). The code-conditioned denoiser itself lives in `pdiff.generative.conditional`."""
