"""Shared test configuration: hypothesis profiles (CI is derandomized), the cuda marker (skipped
without a device unless ``SPECORACLE_REQUIRE_CUDA`` is set, then failed) and the
``one_torch_thread`` fixture."""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine (cuda tests run on the GPU machine)")
    for item in items:
        if "cuda" in item.keywords and not os.environ.get("SPECORACLE_REQUIRE_CUDA"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cuda_required(request):
    """A ``cuda`` test reached without a device (only when SPECORACLE_REQUIRE_CUDA is set) fails."""
    if "cuda" in request.node.keywords:
        import torch

        if not torch.cuda.is_available():
            pytest.fail("SPECORACLE_REQUIRE_CUDA is set but no CUDA device is available")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Single intra-op torch thread for a module of small-V tests: on a shared 2-core machine a
    second thread only adds synchronisation stalls."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster of 2 CPUs for the session (startup takes seconds): the tests that use
    it carry ``pytest.mark.xdist_group("ray")`` so that ``--dist loadgroup`` runs them in one process."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_cluster(ray_session, request):
    """The session's Ray cluster; the test's module is pickled by value (Ray workers cannot import
    test modules), so its functions and classes can run as tasks."""
    ray_session.cloudpickle.register_pickle_by_value(request.module)
    return ray_session
