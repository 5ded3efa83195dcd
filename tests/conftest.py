"""Shared fixtures: real images from ../shared, no network, an isolated Keras cache."""

from __future__ import annotations

import os

import pytest

from tests.support import CONTENT, STYLE

# Tests never touch the network and never see the developer's Keras cache.
os.environ["STYLE_DAEMON_OFFLINE"] = "1"
# A test that asks for one of these runs the real engine (probe: the JAX engine in a subprocess,
# tests/unit/engine/test_device_scale.py).
ENGINE_FIXTURES = {"hed_engine", "probe"}
JAX_FIXTURES = {"probe"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "engine: runs the real engine (Keras); CI runs these twice: with the arithmetic precision: "
        "auto picks, and with STYLE_DAEMON_PRECISION=float32 (precision.py)")
    config.addinivalue_line(
        "markers", "jax: runs the engine under JAX, whose CPU arithmetic is float32 whatever auto picks for "
        "TensorFlow: the float32 pass leaves these out (docs/testing.md)")


def pytest_collection_modifyitems(items):
    """Mark every test that uses the real engine's fixture; tests that start it in a subprocess are marked
    where they are written."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if ENGINE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.engine)
        if JAX_FIXTURES & fixtures:
            item.add_marker(pytest.mark.jax)


@pytest.fixture(autouse=True)
def isolated_keras_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.getbasetemp() / "keras_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def hed_engine():
    from daemon.engine.transfer import StyleTransfer
    from daemon.engine.weights import hed_weights

    return StyleTransfer(hed_weights())


@pytest.fixture(scope="session")
def tubingen():
    from daemon.media.images import load_image, resize_long_side

    return resize_long_side(load_image(CONTENT / "tubingen.jpg").rgb, 96)


@pytest.fixture(scope="session")
def starry():
    from daemon.media.images import load_image, resize_long_side

    return resize_long_side(load_image(STYLE / "starry_night.jpg").rgb, 128)


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (fails, never skips, without the server binaries)."""
    from tests.support.pg_cluster import INSTALL_HINT, Cluster, server_bin

    bindir = server_bin()
    if bindir is None:
        pytest.fail(INSTALL_HINT)
    cluster = Cluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request):
    """The job store a test runs against: {} (the SQLite default) or {'store': <a fresh PostgreSQL database>}."""
    if request.param == "sqlite":
        return {}
    return {"store": request.getfixturevalue("pg_cluster").new_database()}


@pytest.fixture
def folder(tmp_path):
    """The test's own folder: the daemon's config, input, output and state go inside it."""
    return tmp_path


@pytest.fixture
def listener(tmp_path):
    """An sd_notify socket in the test's folder, recording what the daemon tells systemd."""
    from tests.support.notify import NotifyListener

    listener = NotifyListener(tmp_path / "notify.sock", tmp_path)
    yield listener
    listener.close()
