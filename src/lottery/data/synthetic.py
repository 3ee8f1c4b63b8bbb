"""A tiny deterministic classification problem for tests: separable but not trivially so."""

import torch

NUM_CLASSES = 4
FEATURES = 20


def make(n_train: int = 1200, n_test: int = 400, seed: int = 1234):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(NUM_CLASSES, FEATURES, generator=g) * 0.4

    def draw(n):
        y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
        x = centres[y] + torch.randn(n, FEATURES, generator=g)
        return x, y

    x, y = draw(n_train)
    test_x, test_y = draw(n_test)
    return x, y, test_x, test_y
