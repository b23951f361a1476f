"""The real stack (Asterisk in its chroot, Redis, the app) for every integration test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scripts.stack import Stack, ensure_rootfs
from tests.support.stackfix import Agents, StackUnderTest, write_test_config


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    offset = 100 + int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    cfg = write_test_config(tmp_path_factory.mktemp("config") / "hotline.yaml")
    s = Stack(name=f"test{offset}", offset=offset, config=cfg)
    version = ensure_rootfs(s.rootfs)
    print(f"\n[integration] {version}; {s.install_sounds()} prompt files installed")
    s.up()
    try:
        yield StackUnderTest(s)
    finally:
        s.down()


@pytest.fixture(autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every call-path test Asterisk holds no channel or bridge.

    An ARI that cannot be reached fails the test (AriUnreachable): a check that
    cannot look must not pass as "nothing left behind".
    """
    yield
    if "stack" not in request.fixturenames:
        return
    sut: StackUnderTest = request.getfixturevalue("stack")
    left = sut.wait_no_leftovers()
    assert not left["channels"] and not left["bridges"], f"left behind in Asterisk: {left}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def agents(stack: StackUnderTest) -> Iterator[Agents]:
    team = Agents(stack)
    try:
        yield team
    finally:
        team.close()
