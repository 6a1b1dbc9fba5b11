"""Network architectures of the engines' models, with no loading or device logic."""
