"""Protection across processes (torch.distributed, gloo on the CPU): the same protected scene for any
number of processes, resume across ranks, a failing rank stops every rank, and the torchrun CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from adlift import distributed
from adlift.errors import AdLiftError
from adlift.protect.config import ProtectConfig
from tests.helpers import BUST, BUST_CAMS, REPO, TINY_CACHE, free_port, run_ranks, small_protection, tiny_editor


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread, like every rank: torch's CPU reductions then add in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tiny_editor()  # build the tiny model once into the shared cache before any rank loads it
    yield
    torch.set_num_threads(threads)


def tensors(result) -> dict:
    return result.protected.tensors() if hasattr(result, "protected") else result["tensors"]


def assert_same_scene(got: dict, want: dict) -> None:
    for name in want:
        assert torch.equal(got[name], want[name]), f"{name} differs"


def test_shard_and_one_process_group_are_trivial():
    group = distributed.Group()
    assert not group.distributed and group.is_main and distributed.shard([1, 2, 3], group) == [1, 2, 3]
    two = distributed.Group(rank=1, world_size=2, backend="gloo")
    assert distributed.shard(list(range(5)), two) == [1, 3]
    x = torch.ones(3)
    assert distributed.all_reduce_sum_(x, group) is x and torch.equal(x, torch.ones(3))
    assert distributed.gather_messages("m", group) == ["m"]
    with pytest.raises(AdLiftError, match="boom"), distributed.agreed(group):
        raise AdLiftError("boom")


def test_view_batch_default_is_the_number_of_processes():
    assert ProtectConfig().for_ranks(3).view_batch == 3
    assert ProtectConfig(view_batch=2).for_ranks(4).view_batch == 2
    with pytest.raises(AdLiftError, match="view-batch"):
        ProtectConfig(view_batch=0).validate()


def test_two_processes_give_the_one_process_scene_bit_for_bit(tmp_path, single_thread):
    one = small_protection({"cache": str(TINY_CACHE)})
    ranks = run_ranks(2, {"cache": str(TINY_CACHE)}, tmp_path)
    for r in ranks:
        assert isinstance(r, dict), r
    assert_same_scene(ranks[0]["tensors"], tensors(one))
    assert_same_scene(ranks[1]["tensors"], tensors(one))  # every rank holds the same state
    assert ranks[0]["losses"] == [h["loss"] for h in one.history]
    # The protection did something: the colours moved, and the targets' loss fell below the start.
    assert sum(h["loss"] for h in one.history) < sum(h["loss_start"] for h in one.history)
    from adlift.io import read_ply
    from adlift.protect.publish import published_scene

    raw = read_ply(BUST)
    raw = published_scene(raw.subset(torch.arange(0, raw.num_gaussians, 8)))
    assert (one.protected.sh - raw.sh).abs().max() > 1e-3


def test_a_different_view_batch_is_a_different_run(single_thread):
    a = small_protection({"cache": str(TINY_CACHE), "view_batch": 1})
    b = small_protection({"cache": str(TINY_CACHE), "view_batch": 2})
    assert not torch.equal(a.protected.sh, b.protected.sh)
    assert len(a.history) == 2 * len(b.history)  # units: 4 views / batch, 2 rounds


def test_an_interrupted_distributed_run_resumes_on_any_number_of_processes(tmp_path, single_thread):
    whole = small_protection({"cache": str(TINY_CACHE)})
    ckpt = tmp_path / "ckpt.pt"
    job = {"cache": str(TINY_CACHE), "checkpoint": str(ckpt), "stop_after": 2}
    stopped = run_ranks(2, job, tmp_path / "a")
    assert all(isinstance(r, str) and r.startswith("KeyboardInterrupt") for r in stopped), stopped
    assert ckpt.exists()
    saved = ckpt.read_bytes()
    resumed = run_ranks(2, {**job, "stop_after": None}, tmp_path / "b")
    assert_same_scene(resumed[0]["tensors"], tensors(whole))
    ckpt.write_bytes(saved)  # the same checkpoint, resumed by one process
    alone = small_protection({**job, "stop_after": None})
    assert_same_scene(tensors(alone), tensors(whole))
    # A checkpoint of another run (view batch 1): rank 0 says so, the other rank stops quietly.
    other = run_ranks(2, {**job, "stop_after": None, "view_batch": 1}, tmp_path / "c")
    assert other[0].startswith("AdLiftError: ") and "different run" in other[0], other
    assert other[1] == "RankStopped: stopped while reading the checkpoint", other


def test_a_failing_rank_stops_every_rank_without_a_hang(tmp_path, single_thread):
    job = {"cache": str(TINY_CACHE), "fail_rank": 1, "fail_after": 3, "timeout": 60}
    ranks = run_ranks(2, job, tmp_path, timeout=150)
    assert ranks[1] == "AdLiftError: injected failure"
    assert isinstance(ranks[0], str) and ranks[0].startswith("RankStopped: stopped while"), ranks[0]


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", ADLIFT_CACHE_DIR=str(TINY_CACHE), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--master-port={free_port()}",
           "-m", "adlift", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)


PROTECT = ["protect", str(BUST), "--instruction", "clown", "--editor", "tiny", "--width", "32", "--rounds", "1",
           "--pgd-steps", "2", "--fit-steps", "2", "--replay", "1", "--cameras", str(BUST_CAMS)]  # fmt: skip


def test_torchrun_cli_writes_what_one_process_writes(tmp_path, single_thread):
    from tests.helpers import run_cli

    two = torchrun(*PROTECT, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "distributed over 2 ranks (gloo)" in two.stdout and two.stdout.count("protection summary") == 1
    one = run_cli(*PROTECT, "--view-batch", "2", "--out", str(tmp_path / "one"), timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    assert (tmp_path / "two" / "protected.ply").read_bytes() == (tmp_path / "one" / "protected.ply").read_bytes()
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["config"]["view_batch"] == 2
    assert not (tmp_path / "two" / "checkpoint.pt").exists()


def test_torchrun_cli_bad_input_is_one_line_from_one_rank(tmp_path, single_thread):
    bad = torchrun("protect", str(tmp_path / "missing.ply"), "--instruction", "x", "--editor", "tiny",
                   "--out", str(tmp_path / "o"))  # fmt: skip
    assert bad.returncode != 0
    lines = [line for line in bad.stderr.splitlines() if line.startswith("adlift: error:")]
    assert len(lines) == 1 and "missing.ply" in lines[0] and "[rank" not in lines[0], bad.stderr[-2000:]
    # torchrun itself reports the failed ranks with a traceback of its own code; none comes from adlift.
    assert "/adlift/" not in "".join(line for line in bad.stderr.splitlines() if line.strip().startswith("File "))
    assert not (tmp_path / "o").exists()
