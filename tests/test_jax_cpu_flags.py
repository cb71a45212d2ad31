"""``kernels.keep_jax_cpu_reductions_exact``: jaxlib 0.10's YNNPACK reduction fusion off before JAX starts.

Why (measured on an Intel Xeon with AMX, jaxlib 0.10.2): with the fusion, 4
training steps of a small RegNet on JAX ended 4% away from a float64 run,
and tests/test_distribution_exact.py failed; without it, 4.5e-4 (as float32
rounding grows through BatchNorm training). That test is the end-to-end
proof; these check the switch itself on a stand-in environment.
"""

import jaxlib
import pytest
from jax._src import xla_bridge

from keras_regnet.architecture import kernels

JAXLIB_0_10 = jaxlib.__version__.startswith("0.10.")


@pytest.fixture
def backends_not_started(monkeypatch):
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)


def test_the_flag_is_added_to_what_xla_flags_holds(backends_not_started):
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = kernels.keep_jax_cpu_reductions_exact(environ)
    if JAXLIB_0_10:
        assert done == "set"
        assert environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 " + kernels.YNN_REDUCE_FUSION_OFF
    else:  # XLA aborts on flags it does not know: other jaxlibs are left alone
        assert done == "kept" and environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"


def test_a_users_own_ynn_setting_is_kept(backends_not_started):
    environ = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
    assert kernels.keep_jax_cpu_reductions_exact(environ) == "kept"
    assert environ == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}


def test_too_late_warns_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: True)
    environ = {}
    if not JAXLIB_0_10:
        assert kernels.keep_jax_cpu_reductions_exact(environ) == "kept" and environ == {}
        return
    with pytest.warns(UserWarning, match="XLA_FLAGS='--xla_cpu_experimental_ynn_fusion_type=-reduce'"):
        assert kernels.keep_jax_cpu_reductions_exact(environ) == "too late"
    assert environ == {}
