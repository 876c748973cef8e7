"""The generative part of p-diff: the generator protocol every generator implements (`protocol`), the registry
that turns the `generator` params value into one (`registry`), the built-ins on it (`builtins`), and the code
that does their work: the parameter autoencoder (`autoencoder`), the DDPM/DDIM math (`diffusion`), the 1-D UNet
denoiser (`denoiser`), latent diffusion training and sampling (`ldm`), the optimisation loop they share
(`fitting`), the tokenized generator (`tokens`) and the task-conditioned denoiser (`conditional`). It diffuses
any tensor: nothing here imports `pdiff.data` or `pdiff.nets`."""
