"""Writing an IR that cannot be written is a one-line error naming the file (a full disk once gave a traceback)."""

import pytest

ov = pytest.importorskip("openvino")
pytest.importorskip("torch", reason="the exporter needs the export extra")

from edgevoice.errors import EdgevoiceError  # noqa: E402
from edgevoice_export.graph_export import save_ir  # noqa: E402


def _model():
    from openvino import opset13

    inp = opset13.parameter([2], ov.Type.f32)
    return ov.Model([opset13.relu(inp)], [inp])


def test_an_ir_is_written(tmp_path):
    save_ir(_model(), tmp_path / "g.xml")
    assert (tmp_path / "g.xml").stat().st_size > 0 and (tmp_path / "g.bin").exists()


def test_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EdgevoiceError, match=r"cannot write g\.xml in .*file") as error:
        save_ir(_model(), blocker / "g.xml")
    assert "\n" not in str(error.value)
