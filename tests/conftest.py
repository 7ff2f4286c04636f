"""Shared test helpers: locating the read-only `shared/` folder that sits beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
GPT_SOVITS_SET = SHARED_DIR / "fixtures" / "gpt_sovits"


def shared_dir() -> Path:
    """`../shared` beside the repository; the calling test is skipped when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DIR} (upstream fixtures and tiny models live there)")
    return SHARED_DIR


@pytest.fixture(scope="session", autouse=True)
def private_compile_cache(tmp_path_factory):
    """OpenVINO's compiled graphs go to a folder of this test session, not the user's ~/.cache (edgevoice.load
    caches by default; subprocesses inherit the variable)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("EDGEVOICE_CACHE_DIR", str(tmp_path_factory.mktemp("compile-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def gpt_sovits_set() -> Path:
    """Root of the tiny GPT-SoVITS v2 fixture set (models/, audio/, fixtures/); skips if it is not there."""
    shared_dir()
    if not (GPT_SOVITS_SET / "fixtures" / "manifest.json").is_file():
        pytest.skip(f"GPT-SoVITS fixture set not found at {GPT_SOVITS_SET}")
    return GPT_SOVITS_SET


@pytest.fixture(scope="session")
def fixture_bundle(gpt_sovits_set, tmp_path_factory):
    """The upstream-made tiny model set exported once per session: (bundle path, export report)."""
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    from edgevoice_export.gpt_sovits.exporter import GptSovitsFiles, export_gpt_sovits
    from edgevoice_export.graph_export import ExportOptions

    models = gpt_sovits_set / "models"
    out = tmp_path_factory.mktemp("bundle") / "tiny-v2"
    files = GptSovitsFiles(models / "s1_v2_tiny.ckpt", models / "s2_v2_tiny.pth", models / "chinese-hubert-base",
                           bert=models / "chinese-roberta-wwm-ext-large")
    report = export_gpt_sovits(files, ExportOptions(out, progress=False))
    return out, report


EMOTIVOICE_SET = SHARED_DIR / "fixtures" / "emotivoice"


@pytest.fixture(scope="session")
def emotivoice_set() -> Path:
    """Root of the tiny EmotiVoice fixture set (models/ is an upstream-style root, fixtures/ the recorded stages)."""
    shared_dir()
    if not (EMOTIVOICE_SET / "fixtures" / "manifest.json").is_file():
        pytest.skip(f"EmotiVoice fixture set not found at {EMOTIVOICE_SET}")
    return EMOTIVOICE_SET


@pytest.fixture(scope="session")
def emotivoice_bundle(emotivoice_set, tmp_path_factory):
    """The upstream-made tiny EmotiVoice set exported once per session: (bundle path, export report)."""
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.graph_export import ExportOptions

    out = tmp_path_factory.mktemp("bundle") / "emotivoice-tiny"
    report = export_emotivoice(resolve_files(emotivoice_set / "models", {}), ExportOptions(out, progress=False))
    return out, report


METAVOICE_SET = SHARED_DIR / "fixtures" / "metavoice"


@pytest.fixture(scope="session")
def metavoice_set() -> Path:
    """Root of the tiny MetaVoice-1B fixture set (models/ in upstream's containers, fixtures/, audio/)."""
    shared_dir()
    if not (METAVOICE_SET / "fixtures" / "manifest.json").is_file():
        pytest.skip(f"MetaVoice fixture set not found at {METAVOICE_SET}")
    return METAVOICE_SET


def metavoice_files(root: Path):
    from edgevoice_export.metavoice.checkpoints import MetaVoiceFiles

    models = root / "models"
    return MetaVoiceFiles(models / "first_stage.pt", models / "second_stage.pt", models / "speaker_encoder.pt",
                          models / "encodec_24khz_reduced.pt", models / "encodec_config.json")


@pytest.fixture(scope="session")
def metavoice_bundle(metavoice_set, tmp_path_factory):
    """The upstream-made tiny MetaVoice set exported once per session: (bundle path, export report)."""
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    from edgevoice_export.graph_export import ExportOptions
    from edgevoice_export.metavoice.exporter import export_metavoice

    out = tmp_path_factory.mktemp("bundle") / "metavoice-tiny"
    report = export_metavoice(metavoice_files(metavoice_set), ExportOptions(out, progress=False))
    return out, report


@pytest.fixture(scope="module")
def server_voices(fixture_bundle, gpt_sovits_set, tmp_path_factory):
    """A voices folder holding one GPT-SoVITS voice, `ref-en` (per test module: servers may add voices to it)."""
    import edgevoice

    folder = tmp_path_factory.mktemp("voices")
    synth = edgevoice.load(fixture_bundle[0], threads=1)
    audio = gpt_sovits_set / "audio"
    synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en").save(
        folder / "ref-en.npz")
    return folder
