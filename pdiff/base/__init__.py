"""The base model: training (SGD or AdamW) and snapshot collection (`training`), the minibatch loss with augmentation,
autocast and memory format (`batches`), and data-parallel runs under torchrun (`distributed`)."""
