"""The generative part of p-diff: the parameter autoencoder (`autoencoder`), the DDPM/DDIM math (`diffusion`),
the 1-D UNet denoiser (`denoiser`), latent diffusion training and sampling (`ldm`), and the optimisation loop
both share (`fitting`). It diffuses any tensor: nothing here imports `pdiff.data` or `pdiff.nets`."""
