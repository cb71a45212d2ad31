import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Layer-name uniquification and memory stay per-test."""
    yield
    keras.backend.clear_session()


@pytest.fixture
def server():
    """A loopback HTTP server (tests/loopback.py), closed after the test."""
    from loopback import LoopbackServer

    s = LoopbackServer()
    yield s
    s.close()
