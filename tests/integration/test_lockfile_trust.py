"""What sits at the lockfile path is not trusted (issue 9, item 5).

Through the command line (``sampflow hub``, ``sampflow clients``, real subprocesses with a
temporary ``HOME``) and the public API (`AsyncHub`, `AsyncSAMPClient.connect`,
`read_lockfile`):

- a hub replaces only a stale file that parses as a SAMP lockfile: ``SAMP_HUB`` or
  ``--lockfile`` pointing at ``thesis.tex`` is a clear error, and the file is untouched;
- ``~/.samp`` as a dangling link, a folder or a FIFO is a clear error, no traceback, no hang;
- a client refuses a lockfile owned by another user, writable by everyone, or naming a hub
  that is not on this machine, unless ``SAMPFLOW_TRUST_LOCKFILE=1``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from samphub import SampflowHub, hub_env, running_hub, sampflow_argv

from sampflow.samp.client.aio import AsyncSAMPClient
from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.lockfile import (
    TRUST_ENV,
    LockfileError,
    UntrustedLockfile,
    read_lockfile,
)

THESIS = "\\documentclass{article}\n\\begin{document}\nFour years of work.\n\\end{document}\n"


def sampflow(*args: str, home: Path, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``sampflow ARGS`` with `home` as ``HOME`` (and no ``SAMP_HUB`` unless in `env`)."""
    full = {**hub_env(home), **(env or {})}
    return subprocess.run([*sampflow_argv(), *args], capture_output=True, text=True,
                          timeout=timeout, env=full, check=False)


def assert_clear_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


# -- the hub leaves what is not a lockfile alone ---------------------------------------------

@pytest.mark.parametrize("content", [THESIS, "garbage\n", "samp.secret=only-this\n"],
                         ids=["thesis.tex", "garbage", "secret-only"])
def test_hub_refuses_a_lockfile_path_holding_another_file(home: Path, tmp_path: Path,
                                                          content: str) -> None:
    thesis = tmp_path / "thesis.tex"
    thesis.write_text(content)
    by_option = sampflow("hub", "--lockfile", str(thesis), home=home)
    assert_clear_error(by_option, "not a SAMP lockfile", str(thesis))
    by_env = sampflow("hub", home=home, env={"SAMP_HUB": f"std-lockurl:{thesis.as_uri()}"})
    assert_clear_error(by_env, "not a SAMP lockfile", str(thesis))
    clients = sampflow("clients", "--lockfile", str(thesis), home=home)
    assert_clear_error(clients, "not a SAMP lockfile")
    assert thesis.read_text() == content  # never deleted, never overwritten


async def test_public_api_hub_refuses_thesis_tex(tmp_path: Path) -> None:
    thesis = tmp_path / "thesis.tex"
    thesis.write_text(THESIS)
    hub = AsyncHub(lockfile=thesis)
    with pytest.raises(LockfileError, match="not a SAMP lockfile"):
        await hub.start()
    assert not hub.is_running
    await hub.stop()  # a no-op: it never started, and must not touch the file
    assert thesis.read_text() == THESIS


def test_dangling_dot_samp_link_is_a_clear_error(home: Path) -> None:
    (home / ".samp").symlink_to(home / "gone" / "lockfile")
    assert_clear_error(sampflow("hub", home=home), "symbolic link", "does not exist")
    assert_clear_error(sampflow("clients", home=home), "symbolic link")
    assert (home / ".samp").is_symlink()  # left as it was


def test_dot_samp_folder_is_a_clear_error(home: Path) -> None:
    (home / ".samp").mkdir()
    (home / ".samp" / "notes.txt").write_text("mine")
    assert_clear_error(sampflow("hub", home=home), "is a folder")
    assert_clear_error(sampflow("clients", home=home), "is a folder")
    assert (home / ".samp" / "notes.txt").read_text() == "mine"


def test_a_fifo_at_the_lockfile_path_is_refused_without_blocking(home: Path) -> None:
    os.mkfifo(home / ".samp")
    # A reader that opened the FIFO would block for good; the timeout would then fail this.
    assert_clear_error(sampflow("hub", home=home, timeout=30), "not a regular file")
    assert_clear_error(sampflow("clients", home=home, timeout=30), "not a regular file")


def test_a_real_stale_lockfile_is_still_replaced(home: Path, tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    first = SampflowHub(lock, log_dir=tmp_path / "a").start()
    first.kill()  # leaves its lockfile: stale
    with SampflowHub(lock, log_dir=tmp_path / "b") as second:
        assert read_lockfile(lock)["samp.secret"] == second.secret


# -- the client trusts only its own, local hub -----------------------------------------------

@pytest.fixture
def hub(tmp_path: Path) -> Iterator[SampflowHub]:
    with running_hub(tmp_path / "hub.lock", log_dir=tmp_path / "hub") as running:
        yield running


def copy_of(hub: SampflowHub, folder: Path, text: str | None = None) -> Path:
    copy = folder / "copy.lock"
    if text is None:
        shutil.copyfile(hub.lockfile, copy)
    else:
        copy.write_text(text)
    copy.chmod(0o600)
    return copy


def test_a_world_writable_lockfile_is_refused_unless_trusted(hub: SampflowHub, home: Path,
                                                             tmp_path: Path) -> None:
    copy = copy_of(hub, tmp_path)
    copy.chmod(0o666)
    assert_clear_error(sampflow("clients", "--lockfile", str(copy), home=home),
                       "writable by everyone", TRUST_ENV)
    trusted = sampflow("clients", "--lockfile", str(copy), home=home, env={TRUST_ENV: "1"})
    assert trusted.returncode == 0, trusted.stderr
    assert "sampflow-hub" in trusted.stdout


def test_a_lockfile_of_another_user_is_refused_unless_trusted(hub: SampflowHub, home: Path,
                                                              tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")  # CI runs as root
    copy = copy_of(hub, tmp_path)
    os.chown(copy, 65534, 65534)  # nobody
    assert_clear_error(sampflow("clients", "--lockfile", str(copy), home=home),
                       "belongs to another user", TRUST_ENV)
    trusted = sampflow("clients", "--lockfile", str(copy), home=home, env={TRUST_ENV: "1"})
    assert trusted.returncode == 0, trusted.stderr


@pytest.mark.parametrize("host", ["192.0.2.7", "[2001:db8::7]", "samp.example.invalid"])
async def test_a_lockfile_naming_a_remote_hub_is_refused(hub: SampflowHub, home: Path,
                                                         tmp_path: Path, host: str) -> None:
    text = hub.lockfile.read_text().replace("127.0.0.1", host)
    assert host in text
    copy = copy_of(hub, tmp_path, text)
    result = sampflow("clients", "--lockfile", str(copy), home=home)
    assert_clear_error(result, "not on this machine", TRUST_ENV)
    client = AsyncSAMPClient("trust-test")
    with pytest.raises(UntrustedLockfile, match="not on this machine"):
        await client.connect(lockfile=str(copy))
    assert not client.is_connected
    assert read_lockfile(copy, trust=True)["samp.hub.xmlrpc.url"].count(host) == 1


async def test_the_own_hub_lockfile_is_trusted(hub: SampflowHub, home: Path) -> None:
    assert stat.S_IMODE(hub.lockfile.stat().st_mode) == 0o600
    result = sampflow("clients", "--lockfile", str(hub.lockfile), home=home)
    assert result.returncode == 0, result.stderr
    client = AsyncSAMPClient("trust-test")
    await client.connect(lockfile=str(hub.lockfile))
    try:
        assert client.is_connected
    finally:
        await client.disconnect()
