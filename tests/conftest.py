import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def kemar():
    from training.synth.hrtf import load_kemar

    return load_kemar(48_000)


@pytest.fixture()
def rng():
    return np.random.default_rng(1234)
