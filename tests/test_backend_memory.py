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

    def rss_file_mib() -> float:
        status = open("/proc/self/status").read()
        return int(status.split("RssFile:")[1].split()[0]) / 1024

    path = tmp_path / "weights.bin"
    values = np.arange(16 << 20, dtype=np.float32)  # 64 MiB
    values.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    expected = float(mapped.sum(dtype=np.float64))  # touches every page
    before = rss_file_mib()
    assert release_file_pages(str(path.resolve())) >= 1
    assert before - rss_file_mib() > 48  # the mapping's pages are gone from RSS
    assert float(mapped.sum(dtype=np.float64)) == expected  # and fault back in unchanged
