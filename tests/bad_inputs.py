"""The bad-input corpus: what a hostile or careless user hands the command line, built at run time.

Every case makes its inputs in a folder of its own (nothing large is kept in the repository), runs one command and
is judged by `run_case`: exit status 1, exactly one line on stderr that starts with `Error:`, no traceback, no
output file (not even a partial one) and no file written, changed or removed anywhere in the case's folder or the
bundles it was given. tests/test_bad_inputs.py runs each case as a test; run this file to count the outcomes:

    python tests/bad_inputs.py --bundle GPT_SOVITS_BUNDLE [--emotivoice EMOTIVOICE_BUNDLE] [--models FIXTURE_MODELS]

Classes (`Case.group`): text, audio, bundle, checkpoint, voice, options, output. Python API misuse is covered by
`API_CASES` (each call must raise an `EdgevoiceError` with a one-line message).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import struct
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile

OUT = "out.wav"  # every case's output name, inside its folder


@dataclass
class Env:
    """What cases build on: a GPT-SoVITS bundle and a voice made with it (never changed), an EmotiVoice bundle
    and the fixture checkpoints when available, and the case's own folder."""

    work: Path
    bundle: Path
    voice: Path
    reference: Path
    emotivoice: Path | None = None
    models: Path | None = None  # shared/fixtures/gpt_sovits/models (export cases)

    @property
    def out(self) -> Path:
        return self.work / OUT

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def wav(self, name: str, seconds: float, rate: int = 16000, fill: float | None = None, channels: int = 1,
            subtype: str = "PCM_16") -> Path:
        rng = np.random.default_rng(0)
        samples = np.full((int(seconds * rate), channels), fill, np.float32) if fill is not None else \
            (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
        path = self.work / name
        soundfile.write(path, samples, rate, subtype=subtype)
        return path

    def say(self, *extra, bundle: Path | None = None, voice: Path | None = None, text: str | None = "Hello there."
            ) -> list[str]:
        args = ["say", "--bundle", bundle or self.bundle, "--out", self.out]
        args += ["--voice", voice or self.voice] if voice is not False else []
        args += ["--text", text] if text is not None else []
        return [str(a) for a in args + list(extra)]

    def create(self, audio: Path, *extra, text: str | None = "Hello there, this is my voice.") -> list[str]:
        args = ["voice", "create", "--bundle", self.bundle, "--audio", audio, "--out", self.work / "v.npz"]
        args += ["--text", text] if text is not None else []
        return [str(a) for a in args + list(extra)]


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    build: Callable[[Env], list[str]]  # makes the inputs, returns the command line
    expect: str  # a fragment of the one-line error
    stdin: bytes | None = None
    needs: tuple[str, ...] = ()  # "emotivoice", "models" (fixture checkpoints), "torch" (the export extra)
    outputs: tuple[str, ...] = (OUT, "v.npz", "exported")  # names that, if they appear, are (partial) outputs


@dataclass
class Outcome:
    exit_code: int
    stderr_lines: list[str]
    traceback: bool
    partial: list[str] = field(default_factory=list)  # outputs left behind
    written: list[str] = field(default_factory=list)  # any other file created, changed or removed

    @property
    def one_line_error(self) -> bool:
        return (self.exit_code == 1 and len(self.stderr_lines) == 1 and self.stderr_lines[0].startswith("Error: ")
                and not self.traceback)


# ------------------------------------------------------------------------------------------------- helpers


def clone_bundle(env: Env, source: Path | None = None, name: str = "bundle") -> Path:
    """A copy of a bundle to tamper with: the manifest copied, every other file hard-linked (tampering replaces
    files, never writes into them, so the original stays as it was)."""
    source = source or env.bundle
    target = env.work / name
    target.mkdir()
    for path in source.iterdir():
        if path.name.startswith("manifest"):
            (target / path.name).write_bytes(path.read_bytes())
        else:
            try:
                os.link(path, target / path.name)
            except OSError:
                (target / path.name).write_bytes(path.read_bytes())
    return target


def rewrite_manifest(bundle: Path, edit: Callable[[dict], object] | None, raw: bytes | None = None) -> Path:
    """Edit the manifest in place (or replace it by `raw`) as an attacker would, with a matching manifest.sha256."""
    if raw is None:
        data = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        edit(data)
        raw = json.dumps(data).encode()
    (bundle / "manifest.json").write_bytes(raw)
    (bundle / "manifest.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  manifest.json\n")
    return bundle


def replace_file(bundle: Path, name: str, data: bytes, rehash: bool = True) -> Path:
    """Replace one of a bundle's files (a new file, not a write through the hard link), re-listing its hash."""
    (bundle / name).unlink()
    (bundle / name).write_bytes(data)
    if rehash:
        rewrite_manifest(bundle, lambda m: m["files"].__setitem__(name, hashlib.sha256(data).hexdigest()))
    return bundle


def tampered(env: Env, edit: Callable[[dict], object]) -> Path:
    return rewrite_manifest(clone_bundle(env), edit)


def voice_file(env: Env, edit: Callable[[dict, dict], None], name: str = "bad.npz") -> Path:
    """The good voice with its header and arrays changed by `edit(header, arrays)`."""
    with np.load(env.voice, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        arrays = {key: data[key] for key in data.files if key != "header"}
    edit(header, arrays)
    path = env.work / name
    with open(path, "wb") as out:
        np.savez(out, header=np.array(json.dumps(header)), **arrays)
    return path


def npz_declaring(env: Env, shape: tuple[int, ...]) -> Path:
    """The good voice with its `ge` array's header claiming `shape` (the bytes stay few)."""
    path = voice_file(env, lambda h, a: None)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    array = np.zeros(4, np.float32)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    members["ge.npy"] = buffer.getvalue() + array.tobytes()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _setitem(path: str, value):
    """An edit that sets `data[a][b]...` for the dotted `path`."""
    def edit(data):
        keys = path.split(".")
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return edit


def _renamed_graph(old: str, new: str):
    """An edit that renames graph `old` to `new` (its files stay where they are)."""
    def edit(data):
        data["graphs"][new] = data["graphs"].pop(old)
    return edit


def _pickle_calling(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle that calls module.name(argument) when loaded (a classic malicious checkpoint)."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(argument)) + \
        argument.encode() + b"\x85R."


def _torch_zip(pkl: bytes, storages: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _tensor_past_its_storage() -> bytes:
    """{'weight': a tensor of 1,000,000 halves viewing a storage of 4} using only admitted globals."""
    pid = b"(X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
    args = b"K\x00J@B\x0f\x00\x85K\x01\x85"  # offset 0, size (1000000,), stride (1,)
    hooks = b"ccollections\nOrderedDict\n)R"
    tensor = b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + args + b"\x89" + hooks + b"tR"
    return _torch_zip(b"\x80\x02}(X\x06\x00\x00\x00weight" + tensor + b"u.", {"0": b"\x00" * 8})


def export(env: Env, gpt: Path | None = None, sovits: Path | None = None, hubert: Path | None = None) -> list[str]:
    models = env.models
    return [str(a) for a in ["export", "gpt-sovits", "--gpt", gpt or models / "s1_v2_tiny.ckpt",
                             "--sovits", sovits or models / "s2_v2_tiny.pth",
                             "--hubert", hubert or models / "chinese-hubert-base",
                             "--out", env.work / "exported", "--format", "onnx"]]


def _hubert_with(env: Env, header: bytes, body: bytes = b"", header_length: int | None = None) -> Path:
    """A copy of the fixture HuBERT folder whose safetensors file is replaced by a crafted one."""
    folder = env.work / "hubert"
    folder.mkdir()
    for path in (env.models / "chinese-hubert-base").iterdir():
        if path.suffix == ".json":  # the configs; the weights are the crafted file
            (folder / path.name).write_bytes(path.read_bytes())
    length = len(header) if header_length is None else header_length
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", length) + header + body)
    return folder


# ------------------------------------------------------------------------------------------------- the corpus

LONG = "Hello there. " * 400  # 5,200 characters: over GPT-SoVITS's 5,000 per call


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(name, group, build, expect, **kw):
        c.append(Case(name, group, build, expect, **kw))

    # --- text
    add("empty text", "text", lambda e: e.say(text=""), "the text to synthesise is empty")
    add("only spaces", "text", lambda e: e.say(text="   \t "), "the text to synthesise is empty")
    add("only markup", "text", lambda e: e.say(text="<speak><break time=\"1s\"/></speak>"), "is empty")
    add("only escape codes", "text", lambda e: e.say(text="\x1b[31m\x1b[0m"), "is empty")
    add("only punctuation", "text", lambda e: e.say(text="...!!!"), "nothing to read")
    add("only emoji", "text", lambda e: e.say(text="😀😀😀"), "can read nothing in this text")
    add("Cyrillic in en", "text", lambda e: e.say(text="Привет мир."), "can read nothing in this text")
    add("Arabic in en", "text", lambda e: e.say(text="مرحبا بالعالم"), "can read nothing")
    add("Korean in en, strict", "text", lambda e: e.say("--strict", text="Hello 안녕하세요."), "안 녕 하 세 요")
    add("kana in zh, strict", "text", lambda e: e.say("--strict", "--language", "zh", text="你好こんにちは。"),
        "cannot read 5 different characters")
    add("Greek in ja, strict", "text", lambda e: e.say("--strict", "--language", "ja", text="こんにちは αβγ。"),
        "(α β γ)")
    add("Korean in auto", "text", lambda e: e.say("--language", "auto", text="안녕하세요"), "can read nothing")
    add("unknown language", "text", lambda e: e.say("--language", "xx"), "unsupported language 'xx'")
    add("Chinese passage past BERT", "text", lambda e: e.say("--language", "zh", text="我们今天去公园玩" * 64),
        "without a break is longer than BERT reads")
    add("text too long", "text", lambda e: e.say(text=LONG), "the limit is 5000")
    add("invalid UTF-8 on stdin", "text", lambda e: e.say(text="-"), "standard input is not valid UTF-8 (byte 0xff "
        "at byte offset 6", stdin=b"Hello \xff world")
    add("UTF-16 on stdin", "text", lambda e: e.say(text="-"), "byte 0xff at byte offset 0",
        stdin="Hello".encode("utf-16"))
    add("empty stdin", "text", lambda e: e.say(text="-"), "is empty", stdin=b"")
    add("invalid UTF-8 in --text", "text", lambda e: e.say(text=b"caf\xe9".decode("utf-8", "surrogateescape")),
        "--text is not valid UTF-8 (byte 0xe9 at byte offset 3)")
    add("invalid UTF-8 in --text-file", "text",
        lambda e: e.say("--text-file", e.file("t.txt", b"ok\n\xc3\x28"), text=None), "byte 0xc3 at byte offset 3")
    add("--text-file missing", "text", lambda e: e.say("--text-file", e.work / "absent.txt", text=None),
        "text file not found")
    add("--text-file a device", "text", lambda e: e.say("--text-file", "/dev/zero", text=None),
        "not a regular file")
    add("--text-file over 1 MiB", "text",
        lambda e: e.say("--text-file", e.file("big.txt", "a" * (1 << 20) + "b"), text=None), "over 1,048,576 bytes")
    add("--text-file of NUL bytes", "text", lambda e: e.say("--text-file", e.file("nul.txt", b"\0" * 64), text=None),
        "is empty")
    add("--text and --text-file", "text", lambda e: e.say("--text-file", e.file("t.txt", "Hi.")),
        "one of them")
    add("neither --text nor --text-file", "text", lambda e: e.say(text=None), "one of them")
    add("transcript only markup", "text", lambda e: e.create(e.reference, text="<b></b>"),
        "empty once markup is removed")
    add("transcript too long", "text", lambda e: e.create(e.reference, text="word " * 300), "at most 1000")
    add("transcript empty", "text", lambda e: e.create(e.reference, text=""), "--text is empty")
    add("transcript unreadable, strict", "text", lambda e: e.create(e.reference, "--strict", text="Hi Привет."),
        "refused: --strict")
    add("transcript nothing readable", "text", lambda e: e.create(e.reference, text="Привет."),
        "can read nothing")
    add("EmotiVoice: unknown language", "text",
        lambda e: e.say("--language", "ja", bundle=e.emotivoice, voice=False), "unsupported language 'ja' for "
        "emotivoice", needs=("emotivoice",))
    add("EmotiVoice: only emoji", "text", lambda e: e.say(bundle=e.emotivoice, voice=False, text="😀😀"),
        "can read nothing", needs=("emotivoice",))
    add("EmotiVoice: Cyrillic", "text", lambda e: e.say(bundle=e.emotivoice, voice=False, text="Привет."),
        "can read nothing", needs=("emotivoice",))
    add("EmotiVoice: ß, strict", "text", lambda e: e.say("--strict", bundle=e.emotivoice, voice=False,
                                                          text="Straße"), "(ß)", needs=("emotivoice",))
    add("EmotiVoice: Arabic-Indic digits", "text",
        lambda e: e.say(bundle=e.emotivoice, voice=False, text="Room ٣."), "accepts only ASCII digits",
        needs=("emotivoice",))
    add("EmotiVoice: text too long", "text",
        lambda e: e.say(bundle=e.emotivoice, voice=False, text="Hi. " * 5001), "the limit is 20000",
        needs=("emotivoice",))

    # --- audio
    add("reference missing", "audio", lambda e: e.create(e.work / "absent.wav"), "audio file not found")
    add("reference a folder", "audio", lambda e: e.create(e.work), "is a folder, not an audio file")
    add("reference a device", "audio", lambda e: e.create(Path("/dev/null")), "is a device or pipe, not an audio file")
    add("reference is text", "audio", lambda e: e.create(e.file("a.wav", "not audio")), "cannot read audio")
    add("reference random bytes", "audio", lambda e: e.create(e.file("r.wav", os.urandom(4096))), "cannot read audio")
    add("reference truncated header", "audio",
        lambda e: e.create(e.file("t.wav", e.wav("full.wav", 5).read_bytes()[:30])), "cannot read audio")
    add("reference empty", "audio", lambda e: e.create(e.wav("e.wav", 0)), "empty")
    add("reference 1 s", "audio", lambda e: e.create(e.wav("s.wav", 1)), "needs 3–10 s")
    add("reference 11 s", "audio", lambda e: e.create(e.wav("l.wav", 11)), "needs 3–10 s")
    add("reference 2 min", "audio", lambda e: e.create(e.wav("h.wav", 120, rate=8000)), "needs 3–10 s")
    add("reference silent", "audio", lambda e: e.create(e.wav("z.wav", 5, fill=0.0)), "silent")
    add("reference a constant level", "audio", lambda e: e.create(e.wav("dc.wav", 5, fill=0.5)), "constant level")
    add("reference at 1 Hz", "audio", lambda e: e.create(e.wav("hz.wav", 5, rate=1)), "1 Hz is outside 4000–768000")
    add("reference with NaN", "audio", lambda e: e.create(e.wav("n.wav", 5, fill=float("nan"), subtype="FLOAT")),
        "NaN or infinite")
    add("reference with inf", "audio", lambda e: e.create(e.wav("i.wav", 5, fill=float("inf"), subtype="FLOAT")),
        "NaN or infinite")
    add("aux clip missing", "audio", lambda e: e.create(e.reference, "--aux-audio", e.work / "absent.wav"),
        "audio file not found")
    add("aux clip too short", "audio", lambda e: e.create(e.reference, "--aux-audio", e.wav("a.wav", 0.2)),
        "at least 0.5 s")
    add("aux clip 2 min", "audio", lambda e: e.create(e.reference, "--aux-audio", e.wav("a.wav", 120, rate=8000)),
        "at most 60 s")
    add("aux clip silent", "audio", lambda e: e.create(e.reference, "--aux-audio", e.wav("a.wav", 2, fill=0.0)),
        "silent")
    add("aux clip a constant level", "audio",
        lambda e: e.create(e.reference, "--aux-audio", e.wav("a.wav", 2, fill=-0.25)), "constant level")
    add("aux clip NaN", "audio",
        lambda e: e.create(e.reference, "--aux-audio", e.wav("a.wav", 2, fill=float("nan"), subtype="FLOAT")),
        "NaN or infinite")
    add("33 aux clips", "audio", lambda e: e.create(e.reference, *["--aux-audio", e.reference] * 33),
        "at most 32")

    # --- bundles
    add("bundle missing", "bundle", lambda e: e.say(bundle=e.work / "absent"), "bundle folder not found")
    add("bundle is a file", "bundle", lambda e: e.say(bundle=e.file("b", "x")), "")
    add("manifest missing", "bundle", lambda e: e.say(bundle=_folder(e, "empty")), "")
    add("manifest not JSON", "bundle", lambda e: e.say(bundle=rewrite_manifest(clone_bundle(e), None, b"{nope")), "")
    add("manifest is []", "bundle", lambda e: e.say(bundle=rewrite_manifest(clone_bundle(e), None, b"[]")), "")
    add("manifest not UTF-8", "bundle",
        lambda e: e.say(bundle=rewrite_manifest(clone_bundle(e), None, b"{\"a\": \"\xff\"}")), "")
    add("manifest edited, hash kept", "bundle", lambda e: e.say(bundle=_edited_without_rehash(e)), "manifest")
    add("graph path with ..", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("graphs.sovits_vocoder.files.openvino", "../x.xml"))), "")
    add("graph path absolute", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("graphs.sovits_vocoder.files.openvino", "/etc/passwd"))), "")
    add("graph file a symlink outside", "bundle", lambda e: e.say(bundle=_linked_outside(e)), "")
    add("graph file altered", "bundle",
        lambda e: e.say(bundle=replace_file(clone_bundle(e), "gpt_prefill.xml", b"<net/>", rehash=False)),
        "sha256")
    add("graph file garbage, rehashed", "bundle",
        lambda e: e.say(bundle=replace_file(clone_bundle(e), "gpt_prefill.xml", b"<net garbage")),
        "graph 'gpt_prefill' cannot be loaded")
    add("onnx graph garbage, rehashed", "bundle",
        lambda e: e.say("--backend", "onnxruntime",
                        bundle=replace_file(clone_bundle(e), "gpt_prefill.onnx", b"\x08\x07garbage")),
        "gpt_prefill.onnx is not a well-formed ONNX graph")
    add("onnx graph without a graph, rehashed", "bundle",  # well-formed protobuf: onnxruntime's own refusal
        lambda e: e.say("--backend", "onnxruntime",
                        bundle=replace_file(clone_bundle(e), "gpt_prefill.onnx", b"\x08\x07")),
        "graph 'gpt_prefill' cannot be loaded")
    add("graph file missing", "bundle", lambda e: e.say(bundle=_without(clone_bundle(e), "gpt_prefill.xml")), "")
    add("CACHE_DIR in runtime options", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("graphs.sovits_vocoder.runtime_options.openvino.CACHE_DIR",
                                                    str(e.work / "outside-cache")))), "CACHE_DIR")
    add("unknown runtime option", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("graphs.sovits_vocoder.runtime_options.openvino.FOO", "1"))),
        "FOO")
    add("vocoder context not a count", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("model.sovits.vocoder_context_frames", "all"))),
        "vocoder_context_frames")
    add("SoVITS as one graph (older bundle)", "bundle",
        lambda e: e.say(bundle=tampered(e, _renamed_graph("sovits_vocoder", "sovits_decode"))), "re-export")
    add("SoVITS encoder graph missing", "bundle",
        lambda e: e.say(bundle=tampered(e, _renamed_graph("sovits_latent", "sovits_other"))), "sovits_latent")
    add("unknown family", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("family", "tortoise"))),
        "'tortoise' is not supported")
    add("wrong family for its graphs", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("family", "emotivoice"))),
        "")
    add("graph entry removed", "bundle",
        lambda e: e.say(bundle=tampered(e, lambda m: m["graphs"].pop("gpt_prefill"))), "gpt_prefill")
    add("format version 999", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("format_version", 999))), "999")
    add("BERT vocabulary outside", "bundle",
        lambda e: e.say("--language", "zh", bundle=tampered(e, _setitem("model.bert.vocab_file", "../../etc/passwd")),
                        text="你好。"), "")
    add("files entry naming /etc/passwd", "bundle",
        lambda e: e.say(bundle=tampered(e, lambda m: m["files"].__setitem__("/etc/passwd", "0" * 64))), "")
    add("sample rate a string", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("sample_rate", "fast"))), "")
    add("symbols not a list", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("symbols", 5))), "")
    # the model facts (a probe's: tracebacks, or numpy asked for terabytes)
    add("hop length zero", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("model.sovits.hop_length", 0))),
        "sovits.hop_length must be a whole number")
    add("channels past the graphs'", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("model.sovits.inter_channels", 193))),
        "inter_channels 193 does not match sovits_latent's noise")
    add("layer count a string", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("model.gpt.n_layer", "2"))),
        "gpt.n_layer must be a whole number")
    add("end token past the vocabulary", "bundle",
        lambda e: e.say(bundle=tampered(e, _setitem("model.gpt.eos", 5000))), "gpt.eos 5000 is not a token id")
    add("max_sec NaN", "bundle", lambda e: e.say(bundle=tampered(e, _setitem("model.gpt.max_sec", float("nan")))),
        "gpt.max_sec must be a positive number")

    # --- crafted checkpoints (export)
    needs = ("models", "torch")
    add("checkpoint calling os.system", "checkpoint",
        lambda e: export(e, gpt=e.file("evil.ckpt", _pickle_calling("os", "system", "touch PWNED"))), "",
        needs=needs)
    add("torch zip calling builtins.eval", "checkpoint",
        lambda e: export(e, gpt=e.file("evil.ckpt", _torch_zip(_pickle_calling("builtins", "eval", "1+1")))), "",
        needs=needs)
    add("tensor past its storage", "checkpoint",
        lambda e: export(e, gpt=e.file("view.ckpt", _tensor_past_its_storage())), "", needs=needs)
    add("checkpoint is text", "checkpoint", lambda e: export(e, sovits=e.file("s2.pth", "a readme")), "",
        needs=needs)
    add("checkpoint empty", "checkpoint", lambda e: export(e, gpt=e.file("empty.ckpt", b"")), "", needs=needs)
    add("checkpoint truncated", "checkpoint",
        lambda e: export(e, gpt=e.file("half.ckpt", (e.models / "s1_v2_tiny.ckpt").read_bytes()[:100_000])), "",
        needs=needs)
    add("checkpoint a folder", "checkpoint", lambda e: export(e, gpt=e.work), "", needs=needs)
    add("safetensors header offsets past the data", "checkpoint",
        lambda e: export(e, hubert=_hubert_with(e, json.dumps(
            {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode(), b"\0" * 16)), "",
        needs=needs)
    add("safetensors unknown dtype", "checkpoint",
        lambda e: export(e, hubert=_hubert_with(e, json.dumps(
            {"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}).encode(), b"\0" * 16)), "",
        needs=needs)
    add("safetensors header length huge", "checkpoint",
        lambda e: export(e, hubert=_hubert_with(e, b"", header_length=1 << 60)), "", needs=needs)

    # --- voice files
    add("voice missing", "voice", lambda e: e.say(voice=e.work / "absent.npz"), "voice file not found")
    add("voice a folder", "voice", lambda e: e.say(voice=e.work), "is a folder, not a voice file")
    add("voice empty", "voice", lambda e: e.say(voice=e.file("v.npz", b"")), "not an edgevoice voice file")
    add("voice junk", "voice", lambda e: e.say(voice=e.file("v.npz", os.urandom(512))), "not an edgevoice voice file")
    add("voice zip without arrays", "voice",
        lambda e: e.say(voice=e.file("v.npz", _torch_zip(b"x"))), "not an edgevoice voice file")
    add("voice with pickled objects", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("ge", np.array([object()], dtype=object)))),
        "not an edgevoice voice file")
    add("voice header not JSON", "voice",
        lambda e: e.say(voice=_raw_header(e, "{not json")), "not an edgevoice voice file")
    add("voice header a list", "voice", lambda e: e.say(voice=_raw_header(e, "[1, 2]")), "not an object")
    add("voice of another format", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: h.__setitem__("format", "other"))), "not an edgevoice voice")
    add("voice format version 2", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: h.__setitem__("format_version", 2))), "version 2")
    add("voice header fields missing", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: h.pop("model_fingerprint"))), "no model_fingerprint")
    add("voice text a number", "voice", lambda e: e.say(voice=voice_file(e, lambda h, a: h.__setitem__("text", 5))),
        "text must be text")
    add("voice of another model", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: h.__setitem__("model_fingerprint", "0" * 64))),
        "different model")
    add("prompt tokens 2-D", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("prompt_tokens", a["prompt_tokens"][None]))),
        "prompt_tokens must be a list of integers")
    add("prompt tokens float", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("prompt_tokens", a["prompt_tokens"] + 0.5))),
        "prompt_tokens must be a list of integers")
    add("prompt token out of range", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a["prompt_tokens"].__setitem__(0, 5000))), "0…1023")
    add("prompt token negative", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a["prompt_tokens"].__setitem__(0, -3))), "negative")
    add("phone id past the table", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a["prompt_phone_ids"].__setitem__(0, 100_000))), "0…731")
    add("200,000-token prompt", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("prompt_tokens", np.ones(200_000, np.int64)))),
        "at most 530")
    add("BERT features of other phones", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("prompt_bert", a["prompt_bert"][:, :-1]))),
        "do not match the phones")
    add("ge of another shape", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("ge", np.zeros((1, 3, 1), np.float32)))),
        "this bundle's is [1, 512, 1]")
    add("ge with NaN", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a["ge"].__setitem__((0, 0, 0), np.nan))), "NaN")
    add("ge of integers", "voice",
        lambda e: e.say(voice=voice_file(e, lambda h, a: a.__setitem__("ge", a["ge"].astype(np.int32)))),
        "ge must be a 3-D float array")
    add("array declaring 32 TB", "voice", lambda e: e.say(voice=npz_declaring(e, (8_000_000_000_000,))),
        "declares 32,000,000,000,000 bytes")
    add("--voice on EmotiVoice", "voice", lambda e: e.say(bundle=e.emotivoice), "built-in speakers",
        needs=("emotivoice",))
    add("--speaker on GPT-SoVITS", "voice", lambda e: e.say("--speaker", "1"), "clones a voice")
    add("no --voice on GPT-SoVITS", "voice", lambda e: e.say(voice=False), "needs a voice")
    add("EmotiVoice speaker row past the table", "voice",
        lambda e: e.say("--speaker", "999999", bundle=e.emotivoice, voice=False), "outside 0…",
        needs=("emotivoice",))
    add("EmotiVoice speaker unknown name", "voice",
        lambda e: e.say("--speaker", "nobody", bundle=e.emotivoice, voice=False), "no speaker named 'nobody'",
        needs=("emotivoice",))

    # --- options
    for option, value, expect in [
        ("--seed", "-1", "seed must be a non-negative integer"), ("--seed", str(2 ** 64), "non-negative integer"),
        ("--threads", "0", "--threads must be at least 1"), ("--threads", "-1", "--threads must be at least 1"),
        ("--temperature", "nan", "finite"), ("--temperature", "inf", "finite"), ("--temperature", "-1", "positive"),
        ("--top-p", "0", "top_p"), ("--top-p", "2", "top_p"), ("--top-p", "nan", "finite"), ("--top-k", "0", "top_k"),
        ("--top-k", "-5", "top_k"), ("--repetition-penalty", "nan", "finite"),
        ("--repetition-penalty", "0", "positive"),
        ("--speed", "0", "outside 0.25–4"), ("--speed", "100", "outside"), ("--speed", "nan", "finite"),
        ("--speed", "-inf", "finite"), ("--guidance", "3", "does not apply"),
        ("--max-new-tokens", "5", "does not apply"),
    ]:
        add(f"{option} {value}", "options", lambda e, o=option, v=value: e.say(o, v), expect)
    add("--greedy on GPT-SoVITS", "options", lambda e: e.say("--greedy"), "does not apply")
    add("EmotiVoice --top-k", "options", lambda e: e.say("--top-k", "5", bundle=e.emotivoice, voice=False),
        "does not apply", needs=("emotivoice",))
    add("EmotiVoice --speed 10", "options", lambda e: e.say("--speed", "10", bundle=e.emotivoice, voice=False),
        "outside", needs=("emotivoice",))
    add("voice create --threads 0", "options", lambda e: e.create(e.reference, "--threads", "0"), "at least 1")
    add("--min-tokens over --max-tokens", "options", lambda e: e.say("--min-tokens", "50", "--max-tokens", "10"),
        "min_tokens 50 is more than max_tokens 10")

    # --- output paths
    add("--out a folder", "output", lambda e: _with_out(e.say(), e.work / "folder", mkdir=True), "is a folder")
    add("--out under a file", "output", lambda e: _with_out(e.say(), e.file("plain.txt", "x") / "o.wav"),
        "cannot write")
    # errors that only writing reveals come after synthesis: EmotiVoice's is the quick one
    add("--out in /proc", "output",
        lambda e: _with_out(e.say(bundle=e.emotivoice, voice=False), Path("/proc/edgevoice-test.wav")),
        "cannot write", needs=("emotivoice",))
    add("--out /dev/full", "output", lambda e: _with_out(e.say(bundle=e.emotivoice, voice=False), Path("/dev/full")),
        "No space left", needs=("emotivoice",))
    add("--out empty", "output", lambda e: _with_out(e.say(), Path("")), "is a folder")
    add("--out ending in /", "output", lambda e: _with_out(e.say(), f"{e.work / 'o.wav'}/"), "ends in '/'")
    add("--out is the --text-file", "output",
        lambda e: _with_out(e.say("--text-file", e.file("t.wav", "Hello there."), text=None), e.work / "t.wav"),
        "is also an input of this command")
    add("--out inside the bundle", "output", lambda e: _with_out(e.say(), e.bundle / "o.wav"), "is inside")
    add("voice --out is the reference", "output",
        lambda e: _replace(e.create(e.wav("ref.wav", 5.0)), str(e.work / "v.npz"), str(e.work / "ref.wav")),
        "is also an input of this command")
    add("--split on EmotiVoice", "options",
        lambda e: e.say("--split", "cut2", bundle=e.emotivoice, voice=False), "--split does not apply to emotivoice",
        needs=("emotivoice",))
    add("parity --report inside the bundle", "output",
        lambda e: ["parity", "--bundle", str(e.bundle), "--report", str(e.bundle)], "is inside")
    add("parity of two families", "options",
        lambda e: ["parity", "--bundle", str(e.emotivoice), "--bundle", str(e.bundle)], "give bundles of one family",
        needs=("emotivoice",))
    add("voice --out not .npz", "output",
        lambda e: _replace(e.create(e.reference), str(e.work / "v.npz"), str(e.work / "v.mp3")), "an .npz file")
    add("voice --out a folder", "output",
        lambda e: _replace(e.create(e.reference), str(e.work / "v.npz"), str(_folder(e, "vf"))), "")
    add("voice --out under a file", "output",
        lambda e: _replace(e.create(e.reference), str(e.work / "v.npz"), str(e.file("plain.txt", "x") / "v.npz")), "")
    add("export --out under a file", "output",
        lambda e: _replace(export(e), str(e.work / "exported"), str(e.file("plain.txt", "x") / "b")), "",
        needs=("models", "torch"))
    return c


def _folder(env: Env, name: str) -> Path:
    (env.work / name).mkdir()
    return env.work / name


def _without(bundle: Path, name: str) -> Path:
    (bundle / name).unlink()
    return bundle


def _edited_without_rehash(env: Env) -> Path:
    bundle = clone_bundle(env)
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("32000", "16000"), encoding="utf-8")
    return bundle


def _linked_outside(env: Env) -> Path:
    bundle = _without(clone_bundle(env), "sovits_vocoder.xml")
    (bundle / "sovits_vocoder.xml").symlink_to(env.file("outside.xml", "<net/>"))
    return bundle


def _raw_header(env: Env, header: str) -> Path:
    path = env.work / "raw.npz"
    with open(path, "wb") as out:
        np.savez(out, header=np.array(header), prompt_tokens=np.zeros(1, np.int64))
    return path


def _with_out(args: list[str], out: Path, mkdir: bool = False) -> list[str]:
    if mkdir:
        out.mkdir()
    index = args.index("--out")
    return args[: index + 1] + [str(out)] + args[index + 2:]


def _replace(args: list[str], old: str, new: str) -> list[str]:
    return [new if a == old else a for a in args]


CASES = _cases()


# ------------------------------------------------------------------------------------------------- API misuse


def _api_cases() -> list[tuple[str, Callable]]:
    """(name, call(synth, voice)) pairs that must raise an EdgevoiceError with a one-line message."""
    import edgevoice
    from edgevoice.gpt_sovits.voice import Voice

    rate = 32000
    noise = np.random.default_rng(0).standard_normal(2 * rate).astype(np.float32) * 0.1
    cases = [
        ("load(None)", lambda s, v: edgevoice.load(None)),
        ("load(threads=-1)", lambda s, v: edgevoice.load(s.bundle.path, threads=-1)),
        ("load(threads='4')", lambda s, v: edgevoice.load(s.bundle.path, threads="4")),
        ("load(backend='tpu')", lambda s, v: edgevoice.load(s.bundle.path, backend="tpu")),
        ("load(cache_dir=5)", lambda s, v: edgevoice.load(s.bundle.path, cache_dir=5)),
        ("timbre(stereo)", lambda s, v: s.timbre(np.stack([noise, noise]))),
        ("timbre(uint8)", lambda s, v: s.timbre((noise * 100 + 128).astype(np.uint8))),
        ("timbre(int16 as float)", lambda s, v: s.timbre(noise * 32768)),
        ("timbre(NaN)", lambda s, v: s.timbre(np.full(rate, np.nan, np.float32))),
        ("timbre(empty)", lambda s, v: s.timbre(np.zeros(0, np.float32))),
        ("timbre(None)", lambda s, v: s.timbre(None)),
        ("timbre(text)", lambda s, v: s.timbre("ref.wav")),
        ("timbre(100 samples)", lambda s, v: s.timbre(noise[:100])),
        ("speaker_embedding(stereo)", lambda s, v: s.speaker_embedding(np.stack([noise, noise]))),
        ("reference_codes(2-D)", lambda s, v: s.reference_codes(np.zeros((2, 16000), np.float32))),
        ("reference_embedding(wrong shape)", lambda s, v: s.reference_embedding(np.zeros((3, 3), np.float32))),
        ("reference_embedding(NaN)", lambda s, v: s.reference_embedding(np.full((1025, 10), np.nan, np.float32))),
        ("decode_tokens(token past codebook)", lambda s, v: s.decode_tokens([5000, 1], [1, 2], ge=v.ge)),
        ("decode_tokens(negative phone)", lambda s, v: s.decode_tokens([5, 1], [-1, 2], ge=v.ge)),
        ("decode_tokens(ge shape)", lambda s, v: s.decode_tokens([5, 1], [1, 2], ge=np.zeros((1, 3, 1)))),
        ("decode_tokens(noise shape)", lambda s, v: s.decode_tokens([5, 1], [1, 2], ge=v.ge, noise=np.zeros(7))),
        ("decode_tokens(NaN noise)", lambda s, v: s.decode_tokens([5, 1], [1, 2], ge=v.ge,
                                                                  noise=np.full((1, 192, 4), np.nan))),
        ("decode_tokens(no reference)", lambda s, v: s.decode_tokens([5, 1], [1, 2])),
        ("generate_tokens(prompt past vocab)", lambda s, v: s.generate_tokens([1, 2], np.zeros((1024, 2)), [99999])),
        ("generate_tokens(float phones)", lambda s, v: s.generate_tokens([1.5, 2.0], np.zeros((1024, 2)), [])),
        ("generate_tokens(BERT mismatch)", lambda s, v: s.generate_tokens([1, 2], np.zeros((1024, 3)), [])),
        ("generate_tokens(NaN BERT)", lambda s, v: s.generate_tokens([1, 2], np.full((1024, 2), np.nan), [])),
        ("teacher_forced_logits(token past vocab)",
         lambda s, v: s.teacher_forced_logits([1, 2], np.zeros((1024, 2)), [], [5000])),
        ("stream(text=None)", lambda s, v: list(s.stream(None, v))),
        ("stream(text=5)", lambda s, v: list(s.stream(5, v))),
        ("stream(language='xx')", lambda s, v: list(s.stream("Hello.", v, "xx"))),
        ("stream(voice=None)", lambda s, v: list(s.stream("Hello.", None))),
        ("stream(voice=path string)", lambda s, v: list(s.stream("Hello.", "me.npz"))),
        ("stream(options=dict)", lambda s, v: list(s.stream("Hello.", v, "en", {"seed": 1}))),
        ("stream(Cyrillic only)", lambda s, v: list(s.stream("Привет.", v))),
        ("SynthesisOptions(top_k='5')", lambda s, v: edgevoice.SynthesisOptions(top_k="5")),
        ("SynthesisOptions(seed=1.5)", lambda s, v: edgevoice.SynthesisOptions(seed=1.5)),
        ("SynthesisOptions(seed=-1)", lambda s, v: edgevoice.SynthesisOptions(seed=-1)),
        ("SynthesisOptions(noise_scale=nan)", lambda s, v: edgevoice.SynthesisOptions(noise_scale=float("nan"))),
        ("SynthesisOptions(max_tokens=10**12)", lambda s, v: edgevoice.SynthesisOptions(max_tokens=10 ** 12)),
        ("with_overrides(bogus=1)", lambda s, v: s.default_options.with_overrides(bogus=1)),
        ("with_overrides(min_tokens > max_tokens)",
         lambda s, v: s.default_options.with_overrides(min_tokens=50, max_tokens=10)),
        ("synthesize_batch(batch_size=1.5)",
         lambda s, v: s.synthesize_batch([edgevoice.BatchRequest("Hello.", v, "en")], batch_size=1.5)),
        ("Voice(language 'xx')", lambda s, v: Voice(v.prompt_tokens, v.prompt_phone_ids, v.prompt_bert, v.ge, v.text,
                                                    "xx", v.norm_text, v.model_fingerprint, v.family,
                                                    v.upstream_version)),
        ("create_voice(None)", lambda s, v: s.create_voice(None, "Hello.", "en")),
        ("create_voice(aux_audio='a.wav')", lambda s, v: s.create_voice("ref.wav", "Hello.", "en", "a.wav")),
        ("voice_for(voice=5)", lambda s, v: s.voice_for(voice=5)),
        ("Voice(ids past the limit)", lambda s, v: Voice(np.ones(600, np.int64), v.prompt_phone_ids, v.prompt_bert,
                                                         v.ge, "", "en", "", "x", "gpt-sovits", "v2")),
        ("Voice(2-D phones)", lambda s, v: Voice(v.prompt_tokens, v.prompt_phone_ids[None], v.prompt_bert, v.ge, "",
                                                 "en", "", "x", "gpt-sovits", "v2")),
        ("check_voice(ids past the table)", lambda s, v: s.check_voice(
            Voice(v.prompt_tokens, np.full_like(v.prompt_phone_ids, 5000), v.prompt_bert, v.ge, v.text, v.language,
                  v.norm_text, v.model_fingerprint, v.family, v.upstream_version))),
        ("Voice.load(folder)", lambda s, v: Voice.load(s.bundle.path)),
    ]
    return cases


API_CASE_NAMES = [name for name, _ in _api_cases()]


# ------------------------------------------------------------------------------------------------- judging


def _snapshot(*roots: Path) -> dict[str, tuple]:
    """(size, mtime, inode) of every entry under the roots, links not followed."""
    state = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                info = path.lstat()
                state[str(path)] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return state


def run_case(case: Case, env: Env) -> Outcome:
    """Build the case's inputs, run its command in-process (the working folder is the case's own) and judge it."""
    from click.testing import CliRunner

    from edgevoice.cli import main

    args = case.build(env)
    watched = [env.work, env.bundle] + ([env.emotivoice] if env.emotivoice else [])
    before = _snapshot(*watched)
    cwd = os.getcwd()
    os.chdir(env.work)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(main, args, input=case.stdin)
    finally:
        os.chdir(cwd)
    after = _snapshot(*watched)
    changed = sorted(set(before.items()) ^ set(after.items()))
    names = sorted({path for path, _ in changed})
    outputs = {str(env.work / name) for name in case.outputs}
    partial = [n for n in names if n in outputs or ".partial" in n or n.startswith(tuple(o + "/" for o in outputs))]
    traceback = "Traceback" in result.output or (result.exception is not None
                                                 and not isinstance(result.exception, SystemExit))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return Outcome(result.exit_code, lines, traceback, partial, [n for n in names if n not in partial])


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, type=Path, help="a GPT-SoVITS bundle (not changed)")
    parser.add_argument("--emotivoice", type=Path, help="an EmotiVoice bundle (its cases are skipped without)")
    parser.add_argument("--models", type=Path, help="shared/fixtures/gpt_sovits/models (export cases)")
    parser.add_argument("--reference", type=Path, required=True, help="a 3–10 s reference clip")
    parser.add_argument("--transcript", default="Hello there, this is my voice.")
    args = parser.parse_args(argv)
    import edgevoice

    with tempfile.TemporaryDirectory() as scratch:
        synth = edgevoice.load(args.bundle)
        voice_path = synth.create_voice(args.reference, args.transcript, "en").save(Path(scratch) / "voice.npz")
        counts = {"tried": 0, "one-line errors": 0, "tracebacks": 0, "partial outputs": 0, "outside writes": 0}
        for number, case in enumerate(CASES):
            if ("emotivoice" in case.needs and not args.emotivoice) or ("models" in case.needs and not args.models):
                continue
            work = Path(scratch) / f"case{number}"
            work.mkdir()
            env = Env(work, args.bundle, voice_path, args.reference, args.emotivoice, args.models)
            outcome = run_case(case, env)
            counts["tried"] += 1
            counts["one-line errors"] += outcome.one_line_error and case.expect in outcome.stderr_lines[0]
            counts["tracebacks"] += outcome.traceback
            counts["partial outputs"] += bool(outcome.partial)
            counts["outside writes"] += bool(outcome.written)
            if not outcome.one_line_error or outcome.partial or outcome.written or case.expect not in \
                    (outcome.stderr_lines or [""])[0]:
                print(f"[{case.group}] {case.name}: {outcome}", file=sys.stderr)
        api = [0, 0]
        voice = edgevoice.Voice.load(voice_path)
        for name, call in _api_cases():
            api[0] += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    call(synth, voice)
                print(f"[api] {name}: no error", file=sys.stderr)
            except edgevoice.EdgevoiceError as exc:
                api[1] += "\n" not in str(exc)
            except Exception as exc:  # noqa: BLE001 - counting what escapes is the point here
                print(f"[api] {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(" / ".join(f"{key} {value}" for key, value in counts.items()))
    print(f"API misuse: tried {api[0]} / EdgevoiceError with one line {api[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
