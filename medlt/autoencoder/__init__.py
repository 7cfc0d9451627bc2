"""Latent diffusion: MONAI AutoencoderKL training (`medlt train-autoencoder`), its per-class
reconstruction check (`medlt evaluate-autoencoder`), cached training latents and latent decoding
for `medlt sample` / `medlt synth`."""
