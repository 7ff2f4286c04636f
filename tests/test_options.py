"""The checks every family's SynthesisOptions shares (`edgevoice.options.ModelOptions`): None only where a field's
annotation admits it, the right kind of number, finite values."""

from __future__ import annotations

import dataclasses

import pytest

from edgevoice.emotivoice.options import SynthesisOptions as EmotiVoiceOptions
from edgevoice.errors import OptionsError
from edgevoice.gpt_sovits.options import SynthesisOptions as GptSovitsOptions
from edgevoice.metavoice.options import SynthesisOptions as MetaVoiceOptions

FAMILIES = (GptSovitsOptions, EmotiVoiceOptions, MetaVoiceOptions)


@pytest.mark.parametrize("options", FAMILIES, ids=lambda c: c.__module__.split(".")[1])
def test_none_is_refused_where_the_field_does_not_admit_it(options):
    for item in dataclasses.fields(options):
        kinds = [kind.strip() for kind in str(item.type).split("|")]
        if kinds[0] not in ("int", "float", "bool", "str"):
            continue
        if "None" in kinds:
            assert getattr(options(**{item.name: None}), item.name) is None
        else:
            with pytest.raises(OptionsError, match=rf"^{item.name} must be an? {kinds[0]}, not None$"):
                options(**{item.name: None})


def test_a_manifest_default_of_null_is_one_line():
    with pytest.raises(OptionsError, match="speed must be a float, not None"):
        EmotiVoiceOptions.from_manifest({"speed": None})
