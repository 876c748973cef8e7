"""Datasets: the embedded default and real datasets read from `data.root` (`readers`), split and standardized
once by the `prepare` stage (`prepare`)."""
