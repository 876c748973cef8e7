"""What every stage shares: the params schema (`config`), atomic writes and safe loads (`artifacts`), seeding,
devices and threads (`runtime`, `gpus`), running a stage with one-paragraph errors (`stage`), curve logging
(`tracking`) and offline PNG figures (`plots`)."""
