"""Offline text front-end matching GPT-SoVITS v2: text -> phone ids (+ word2ph for Chinese).

    from edgevoice.gpt_sovits.frontend import phonemize
    result = phonemize("Hello world.", "en")
    result.phone_ids, result.norm_text, result.segments

Never imports torch, nltk or g2p_en and downloads nothing; see docs/frontend.md.
"""

from .coverage import reads
from .api import LANGUAGES, PhonemizeResult, Segment, clean_segment, phonemize, split_by_language
from .cutting import CUT_METHODS, cut_text, prepare_prompt_text, split_target_text
from .errors import FrontendError
from .symbols import symbol_table, symbol_to_id

__all__ = [
    "CUT_METHODS",
    "cut_text",
    "prepare_prompt_text",
    "split_target_text",
    "LANGUAGES",
    "FrontendError",
    "PhonemizeResult",
    "Segment",
    "clean_segment",
    "phonemize",
    "reads",
    "split_by_language",
    "symbol_table",
    "symbol_to_id",
]
