"""Where `say --out` writes: regular files atomically with umask permissions, devices and FIFOs in place, `-` to
standard output, folders refused with one line."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edgevoice.audio import write_wav
from edgevoice.errors import AudioError

AUDIO = (0.1 * np.sin(np.linspace(0, 200, 1600))).astype(np.float32)


def test_regular_file_follows_umask_and_replaces_atomically(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_wav(tmp_path / "a.wav", AUDIO, 16000)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == 16000 and data.size == AUDIO.size
    write_wav(path, AUDIO[:800], 16000)  # replaced whole
    assert soundfile.read(path)[0].size == 800 and not list(tmp_path.glob(".*partial"))


def test_device_fifo_and_symlink_are_written_in_place(tmp_path):
    write_wav("/dev/null", AUDIO, 16000)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device, not a regular file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    write_wav(fifo, AUDIO, 16000)
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert soundfile.read(io.BytesIO(received[0]))[0].size == AUDIO.size
    target = tmp_path / "real.wav"
    target.write_bytes(b"old")
    (tmp_path / "link.wav").symlink_to(target)
    write_wav(tmp_path / "link.wav", AUDIO, 16000)
    assert (tmp_path / "link.wav").is_symlink() and soundfile.read(target)[0].size == AUDIO.size


def test_folder_and_full_device_are_one_line_errors(tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        write_wav(tmp_path, AUDIO, 16000)
    if os.path.exists("/dev/full"):
        with pytest.raises(AudioError, match="write failed"):
            write_wav("/dev/full", AUDIO, 16000)


def test_say_to_standard_output(emotivoice_bundle):
    from click.testing import CliRunner

    from edgevoice.cli import main

    result = CliRunner().invoke(main, ["say", "--bundle", str(emotivoice_bundle[0]), "--text", "Hello there.",
                                       "--out", "-"])
    assert result.exit_code == 0, result.output
    data, rate = soundfile.read(io.BytesIO(result.stdout_bytes))
    assert rate == 16000 and data.size > 0 and b"s of audio to standard output" in result.stderr_bytes


def test_a_reader_that_leaves_early_is_an_error_not_a_success():
    # `| head -c 100`: a large write into a pipe whose reader has gone is taken in part without an error
    script = ("import sys; from edgevoice.files import write_output; write_output('-', b'x' * 600000); "
              "print('wrote', file=sys.stderr)")
    reader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.read(100)
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert reader.returncode != 0 and b"wrote" not in err
    assert b"standard output was closed before all 600000 bytes were written" in err


def test_say_refuses_a_name_that_promises_another_format(emotivoice_bundle, tmp_path):
    """`--out x.mp3` used to get WAV bytes under an .mp3 name (a probe's find); refused before any synthesis."""
    from click.testing import CliRunner

    from edgevoice.cli import main

    for name in ("x.mp3", "x.FLAC"):
        result = CliRunner().invoke(main, ["say", "--bundle", str(emotivoice_bundle[0]), "--text", "Hello.", "--out",
                                           str(tmp_path / name)])
        assert result.exit_code == 1 and "say writes 16-bit WAV" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / name).exists()
    result = CliRunner().invoke(main, ["say", "--bundle", str(emotivoice_bundle[0]), "--text", "Hello.", "--out",
                                       str(tmp_path / "x.WAV")])
    assert result.exit_code == 0, result.output


def test_reference_with_nan_samples_is_refused(tmp_path):
    from edgevoice.audio import read_audio

    audio = np.full(16000, 0.1, np.float32)
    audio[[5, 900]] = [np.nan, np.inf]
    soundfile.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="2 samples are NaN or infinite"):
        read_audio(tmp_path / "nan.wav")


def test_bundle_writers_lock_their_target_and_clear_dead_partials(tmp_path):
    from edgevoice.bundle import atomic_folder
    from edgevoice.errors import BundleError

    target = tmp_path / "bundle"
    stale = tmp_path / ".bundle.abc123.partial"  # what a killed export leaves
    stale.mkdir()
    (stale / "big.bin").write_bytes(b"x" * 1000)
    with atomic_folder(target) as folder:
        assert not stale.exists()
        (folder / "manifest.json").write_text("{}")
        with pytest.raises(BundleError, match="another edgevoice process is writing it"):
            with atomic_folder(target, overwrite=True):
                pass
    assert (target / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no lock, partial or old folder left
    from edgevoice.files import current_umask

    assert target.stat().st_mode & 0o777 == 0o777 & ~current_umask()  # readable as any folder, not mkdtemp's 0700
    with pytest.raises(BundleError, match="already exists"):
        with atomic_folder(target):
            pass


def test_overwrite_replaces_only_a_bundle_that_holds_no_input(tmp_path):
    """A probe's data loss: --overwrite with --out naming the checkpoints' folder (or the folder above the source
    bundle) replaced it, inputs and all."""
    from edgevoice.bundle import FORMAT, atomic_folder
    from edgevoice.errors import BundleError

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "gpt.ckpt").write_bytes(b"weights")
    plain = tmp_path / "notes.txt"
    plain.write_text("mine")
    for target, message in ((checkpoints, "is not an edgevoice bundle"), (plain, "is not an edgevoice bundle")):
        with pytest.raises(BundleError, match=message):
            with atomic_folder(target, overwrite=True, keep=[checkpoints / "gpt.ckpt"]):
                raise AssertionError("no work may start")
    assert (checkpoints / "gpt.ckpt").read_bytes() == b"weights" and plain.read_text() == "mine"
    bundle = tmp_path / "bundle"
    with atomic_folder(bundle) as folder:
        (folder / "manifest.json").write_text(json.dumps({"format": FORMAT}))
        (folder / "inner").mkdir()
    with pytest.raises(BundleError, match="holds the input"):
        with atomic_folder(bundle, overwrite=True, keep=[bundle / "inner"]):
            raise AssertionError("no work may start")
    with atomic_folder(bundle, overwrite=True, keep=[checkpoints]) as folder:  # a bundle: replaced
        (folder / "manifest.json").write_text(json.dumps({"format": FORMAT, "new": True}))
    assert json.loads((bundle / "manifest.json").read_text())["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "checkpoints", "notes.txt"]


def test_a_terminated_export_leaves_no_partial_bundle(gpt_sovits_set, tmp_path):
    """SIGTERM (a kill, a container stopping) used to leave the partial folder and the lock: now it unwinds like
    Ctrl-C."""
    pytest.importorskip("torch")
    import signal
    import subprocess
    import sys
    import time

    models = gpt_sovits_set / "models"
    command = [str(Path(sys.executable).with_name("edgevoice")), "export", "gpt-sovits", "--gpt",
               str(models / "s1_v2_tiny.ckpt"), "--sovits", str(models / "s2_v2_tiny.pth"), "--hubert",
               str(models / "chinese-hubert-base"), "--bert", str(models / "chinese-roberta-wwm-ext-large"), "--out",
               str(tmp_path / "bundle")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".bundle.*.partial")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the export ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == -signal.SIGTERM  # unwound, then ended by the signal (a clean stop to systemd)
    assert list(tmp_path.iterdir()) == []  # no partial folder, no lock, no bundle


def test_failed_bundle_write_leaves_nothing(tmp_path):
    from edgevoice.bundle import atomic_folder

    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "bundle"):
            raise RuntimeError("export failed")
    assert not list(tmp_path.iterdir())


def test_voice_and_case_files_follow_the_umask(tmp_path):
    from edgevoice.npzfile import atomic_savez

    old = os.umask(0o027)
    try:
        path = atomic_savez(tmp_path / "voice.npz", {"format": "x"}, values=np.zeros(3))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_voice_and_case_files_write_through_links_pipes_and_devices(tmp_path):
    """A voice written to a symlink lands in its target, to a FIFO or a device in place: none is replaced by a
    regular file (a voice once replaced /dev/full)."""
    from edgevoice.npzfile import atomic_savez, read_npz

    target = tmp_path / "target.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    atomic_savez(link, {"format": "x"}, values=np.arange(3))
    assert link.is_symlink() and read_npz(target, "voice")[1]["values"].tolist() == [0, 1, 2]

    fifo = tmp_path / "voice.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    atomic_savez(fifo, {"format": "x"}, values=np.zeros(2))
    reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received and received[0][:2] == b"PK"  # a whole zip went through

    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own: never the real one
    except PermissionError:
        pytest.skip("making a device node needs root; the link and FIFO cases above ran")
    atomic_savez(device, {"format": "x"}, values=np.zeros(2))
    assert stat.S_ISCHR(device.stat().st_mode)


def test_output_names_the_system_refuses_are_one_line_errors(tmp_path):
    from edgevoice.audio import write_wav
    from edgevoice.files import check_output

    too_long = tmp_path / ("a" * 300 + ".wav")
    for call in (lambda: check_output(too_long, AudioError), lambda: write_wav(too_long, np.zeros(10, np.float32), 16000)):
        with pytest.raises(AudioError, match="cannot write .*too long"):
            call()
    missing = tmp_path / "nowhere" / "deeper" / "out.wav"
    link = tmp_path / "link.wav"
    link.symlink_to(missing)
    for call in (lambda: check_output(link, AudioError), lambda: write_wav(link, np.zeros(10, np.float32), 16000)):
        with pytest.raises(AudioError, match="whose folder does not exist"):
            call()
    assert not (tmp_path / "nowhere").exists()  # no folder is made through a link
