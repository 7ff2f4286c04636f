"""OpenVINO sessions give back the file pages of their IR's weights once the plugin has packed its own copy."""

from __future__ import annotations

import sys

import numpy as np
import pytest


def test_released_file_pages_leave_rss_and_read_back_the_same(tmp_path):
    """OpenVINO sessions drop their IR's mapped weight pages after packing their own copy (backends)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("file-page release is Linux-only")
    from edgevoice.backends import release_file_pages

    def rss_file_mib() -> float:  # a file on tmpfs (a CI's /tmp) is resident as shared memory, not as a file
        status = open("/proc/self/status").read()
        return sum(int(status.split(f"{kind}:")[1].split()[0]) for kind in ("RssFile", "RssShmem")) / 1024

    path = tmp_path / "weights.bin"
    values = np.arange(16 << 20, dtype=np.float32)  # 64 MiB
    values.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    expected = float(mapped.sum(dtype=np.float64))  # touches every page
    before = rss_file_mib()
    assert release_file_pages(str(path.resolve())) >= 1
    assert before - rss_file_mib() > 48  # the mapping's pages are gone from RSS
    assert float(mapped.sum(dtype=np.float64)) == expected  # and fault back in unchanged


_LARGE_BLOCKS = """
import ctypes, json, sys
sys.path[:0] = {paths!r}
if {fix!r}:
    from edgevoice.memory import hand_back_large_blocks
    assert hand_back_large_blocks()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss_mib():
    return int(open("/proc/self/status").read().split("RssAnon:")[1].split()[0]) / 1024

block = 8 << 20
first = libc.malloc(2 * block)  # a mapped block: freeing it raises glibc's threshold to 16 MiB unless it is fixed
ctypes.memset(first, 1, 2 * block)
libc.free(first)
before = rss_mib()
blocks = [libc.malloc(block) for _ in range(8)]  # 64 MiB, from the heap once the threshold has risen
for pointer in blocks:
    ctypes.memset(pointer, 1, block)
guard = libc.malloc(1 << 20)  # from the heap top (no free chunk is this large): the heap cannot shrink past it
for pointer in blocks[1:]:
    libc.free(pointer)
print(json.dumps(rss_mib() - before))
"""


def _kept_after_free(fix: bool) -> float:
    import json
    import subprocess

    code = _LARGE_BLOCKS.format(paths=sys.path, fix=fix)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_large_freed_blocks_go_back_to_the_system():
    """`hand_back_large_blocks` (called by `edgevoice.load`): 56 MiB freed in 8 MiB blocks leave the process, where
    glibc's rising threshold kept them."""
    from edgevoice.memory import hand_back_large_blocks

    if not sys.platform.startswith("linux") or not hand_back_large_blocks():
        pytest.skip("glibc's malloc only")
    assert _kept_after_free(fix=False) > 48  # the control: glibc's own behaviour keeps them
    assert _kept_after_free(fix=True) < 16


def test_cpu_sessions_hand_their_arena_back_after_each_run(fixture_bundle):
    """An onnxruntime CPU graph's activations leave the process when its call ends (arena shrinkage), so graphs run
    once per sentence do not each keep their largest call's memory."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/status")
    from edgevoice.backends import OnnxRuntimeBackend
    from edgevoice.bundle import Bundle

    def rss_mib() -> float:
        return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024

    session = OnnxRuntimeBackend(threads=1).session(Bundle.load(fixture_bundle[0]), "sovits_vocoder")
    rng = np.random.default_rng(0)
    feeds = {"z": (0.5 * rng.standard_normal((1, 192, 1500))).astype(np.float32),
             "ge": (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32),
             "valid_frames": np.array([1500], np.int64)}
    session.run(feeds)  # first call: any one-off set-up stays
    before = rss_mib()
    audio = session.run(feeds)["audio"]
    assert audio.size == 1500 * Bundle.load(fixture_bundle[0]).manifest.model["sovits"]["hop_length"]
    assert rss_mib() - before < 16  # without shrinking, the arena kept 55 MiB more here
