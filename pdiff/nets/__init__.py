"""Networks: the architecture registry (`models`, `archs`) and which of their parameters are generated
(`selection`: choose, flatten, load a vector back)."""
