"""OpenVINO's compile cache: a private folder of the user's chosen from the environment, never inside a bundle;
an unusable folder is a warning and synthesis goes on without it; cached blobs' pages are released like IR weights."""

from __future__ import annotations

import inspect
import logging
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import edgevoice
from edgevoice import compile_cache
from edgevoice.compile_cache import cache_folder, default_cache_dir, graph_cache_folder

TEXT = "Hello there, how are you today?"


def _options(seed: int):
    return edgevoice.SynthesisOptions(seed=seed, max_tokens=30)  # 1.2 s: a random-enough GPT may never stop


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    environ = {"EDGEVOICE_CACHE_DIR": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert default_cache_dir(environ) == tmp_path / "mine"
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "edgevoice" / "openvino"
    home_cache = tmp_path / "home" / ".cache" / "edgevoice" / "openvino"
    assert default_cache_dir({}) == home_cache
    # empty variables are unset; a relative XDG_CACHE_HOME is ignored, as the XDG spec says
    assert default_cache_dir({"EDGEVOICE_CACHE_DIR": "", "XDG_CACHE_HOME": "relative/cache"}) == home_cache
    monkeypatch.setenv("EDGEVOICE_CACHE_DIR", str(tmp_path / "from-env"))
    assert cache_folder(True) == tmp_path / "from-env"  # True = the default folder, read from os.environ


def test_folder_and_missing_parents_are_created_private(tmp_path):
    folder = cache_folder(tmp_path / "a" / "b" / "cache")
    assert folder == tmp_path / "a" / "b" / "cache"
    for path in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, oct(path.stat().st_mode)
    assert list(folder.iterdir()) == []  # the write probe leaves nothing behind
    assert cache_folder(None) is None and cache_folder(False) is None


@pytest.mark.parametrize("kind", ["under-a-file", "group-writable"])
def test_unusable_folder_is_one_warning_and_no_cache(tmp_path, caplog, kind):
    if kind == "under-a-file":
        (tmp_path / "file").write_text("x")
        folder = tmp_path / "file" / "cache"
    else:
        folder = tmp_path / "shared"
        folder.mkdir()
        folder.chmod(0o775)
    compile_cache._warned.discard(str(folder))
    with caplog.at_level(logging.WARNING, logger="edgevoice"):
        assert cache_folder(folder) is None
        assert cache_folder(folder) is None  # warned once per folder
    lines = [r.getMessage() for r in caplog.records if r.name == "edgevoice"]
    assert len(lines) == 1 and "\n" not in lines[0] and str(folder) in lines[0], lines


def test_graph_folders_are_keyed_by_content(tmp_path):
    a = graph_cache_folder(tmp_path, ["1" * 64, "2" * 64])
    assert a == graph_cache_folder(tmp_path, ["1" * 64, "2" * 64]) and a.is_dir()
    assert graph_cache_folder(tmp_path, ["1" * 64, "3" * 64]) != a  # new weights, same XML: another folder


def test_least_recently_used_graphs_are_pruned_over_the_limit(tmp_path):
    folders = []
    for index, key in enumerate(["a" * 32, "b" * 32, "c" * 32]):
        folder = tmp_path / key
        folder.mkdir()
        (folder / "1.blob").write_bytes(b"x" * 1000)
        if key[0] == "b":
            (folder / "notes.txt").write_text("kept")  # not a blob: its folder stays
        os.utime(folder, (1000 + index, 1000 + index))  # a is the least recently used
        folders.append(folder)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "1.blob").write_bytes(b"x" * 5000)  # not a name of ours: never touched
    new = tmp_path / ("d" * 32)
    new.mkdir()
    assert compile_cache.prune(tmp_path, keep=new, limit=1500) == [folders[0]]
    assert not folders[0].exists() and (folders[1] / "notes.txt").exists() and not (folders[1] / "1.blob").exists()
    assert (folders[2] / "1.blob").exists() and (tmp_path / "mine" / "1.blob").exists()
    assert compile_cache.prune(tmp_path, keep=new, limit=10 ** 6) == []


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _voice(synth, gpt_sovits_set):
    audio = gpt_sovits_set / "audio"
    return synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")


def test_load_caches_outside_the_bundle_and_reads_the_cache_back(fixture_bundle, gpt_sovits_set, tmp_path):
    bundle = fixture_bundle[0]
    before = _tree(bundle)
    cache = tmp_path / "cache"
    synth = edgevoice.load(bundle, threads=1, cache_dir=cache)
    voice = _voice(synth, gpt_sovits_set)
    assert synth.synthesize(TEXT, voice, "en", _options(1)).size > 0
    assert _tree(bundle) == before  # nothing written inside the bundle
    blobs = sorted(cache.rglob("*.blob"))
    assert {b.parent.parent for b in blobs} == {cache} and len({b.parent for b in blobs}) == len(synth._sessions)
    assert all(not s._compiled.get_property("LOADED_FROM_CACHE") for s in synth._sessions.values())

    again = edgevoice.load(bundle, threads=1, cache_dir=cache)
    expected = synth.synthesize(TEXT, voice, "en", _options(2))
    audio = again.synthesize(TEXT, voice, "en", _options(2))
    assert all(s._compiled.get_property("LOADED_FROM_CACHE") for s in again._sessions.values())
    assert audio.shape == expected.shape and abs(audio - expected).max() < 1e-5
    assert sorted(cache.rglob("*.blob")) == blobs  # read, not written again
    streamed = edgevoice.load(bundle, threads=1, cache_dir=cache)
    if "chunk_tokens" in inspect.signature(streamed.stream).parameters:  # the GPT runs on a fork of its session
        assert sum(c.audio.size for c in streamed.stream(TEXT, voice, "en", _options(2), chunk_tokens=10)) > 0
    if sys.platform.startswith("linux"):  # the blobs' mapped pages were given back after the first inference; a
        # few pages of constants read in place (gpt_decode's embedding rows) fault back in
        assert _resident_kib_under(cache) < 0.1 * sum(b.stat().st_size for b in blobs) / 1024


def _resident_kib_under(folder: Path) -> int:
    total, current = 0, None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            current = fields[5] if len(fields) > 5 else None
        elif fields[0] == "Rss:" and current and current.startswith(str(folder.resolve()) + "/"):
            total += int(fields[1])
    return total


def test_unusable_cache_still_synthesises(fixture_bundle, gpt_sovits_set, tmp_path, caplog):
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" / "cache"
    with caplog.at_level(logging.WARNING, logger="edgevoice"):
        synth = edgevoice.load(fixture_bundle[0], threads=1, cache_dir=folder)
    assert synth.backend.cache_dir is None
    assert any(str(folder) in r.getMessage() for r in caplog.records)
    assert synth.synthesize(TEXT, _voice(synth, gpt_sovits_set), "en", _options(1)).size > 0


def test_cli_cache_options(fixture_bundle, gpt_sovits_set, tmp_path):
    from edgevoice.cli import main

    bundle, audio = fixture_bundle[0], gpt_sovits_set / "audio"
    voice, cache = tmp_path / "me.npz", tmp_path / "cli-cache"
    result = CliRunner().invoke(main, ["voice", "create", "--bundle", str(bundle), "--audio", str(audio / "ref_en.wav"),
                                       "--text", (audio / "ref_en.txt").read_text().strip(), "--out", str(voice),
                                       "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert sorted(p.parent.name for p in cache.rglob("*.blob"))  # voice creation compiled into --cache-dir
    say = ["say", "--bundle", str(bundle), "--voice", str(voice), "--text", TEXT, "--seed", "1",
           "--max-tokens", "30"]
    result = CliRunner().invoke(main, say + ["--out", str(tmp_path / "a.wav"), "--no-cache",
                                             "--cache-dir", str(cache)])
    assert result.exit_code == 1 and "not both" in result.output
    default = Path(os.environ["EDGEVOICE_CACHE_DIR"])  # conftest's: the folder used when no option is given
    before = _tree(default)
    result = CliRunner().invoke(main, say + ["--out", str(tmp_path / "b.wav"), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert _tree(default) == before
