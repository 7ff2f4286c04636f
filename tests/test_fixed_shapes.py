"""The fixed-shape plan (`edgevoice.fixed_shapes`): every frame kept once and in order, from a call that sees at
least `reach` real frames on each side of it (or the sequence's true edge), at one of the allowed lengths."""

from __future__ import annotations

import pytest

from edgevoice.fixed_shapes import fixed_shape_calls

LENGTHS = (64, 128, 192, 256)
REACH = 16


@pytest.mark.parametrize("frames", [1, 2, 31, 32, 33, 47, 63, 64, 65, 100, 128, 129, 255, 256, 257, 300, 479, 480,
                                    481, 497, 1000, 1234])
def test_every_frame_is_kept_once_from_a_call_that_sees_its_reach(frames):
    calls = fixed_shape_calls(frames, REACH, LENGTHS)
    kept = [frame for call in calls for frame in range(call.keep_start, call.keep_stop)]
    assert kept == list(range(frames))
    for call in calls:
        assert 0 <= call.start < call.stop <= frames and call.length >= call.stop - call.start
        assert call.start <= call.keep_start < call.keep_stop <= call.stop
        # a cut or padded edge lies at least `reach` frames from every kept frame; the true edges need nothing
        assert call.start == 0 or call.keep_start - call.start >= REACH
        padded_or_cut = call.stop < frames or call.length > call.stop - call.start
        assert not padded_or_cut or call.stop - call.keep_stop >= REACH
        assert call.length in LENGTHS or (call.length <= 2 * REACH and call.length == call.stop - call.start)


def test_the_shapes_are_few_whatever_the_lengths():
    shapes = {call.length for frames in range(1, 3000) for call in fixed_shape_calls(frames, REACH, LENGTHS)}
    assert shapes <= set(LENGTHS) | set(range(1, 2 * REACH + 1))
    assert set(LENGTHS) <= shapes


def test_work_beyond_the_frames_is_bounded():
    for frames in range(2 * REACH + 1, 3000):
        computed = sum(call.length for call in fixed_shape_calls(frames, REACH, LENGTHS))
        if frames < LENGTHS[-1]:  # padding to the next length and the tail call
            assert computed <= frames + (LENGTHS[1] - LENGTHS[0]) + 2 * REACH
        else:  # windows overlap by 2·reach, the last one reaches back at most a window
            assert computed <= frames * LENGTHS[-1] / (LENGTHS[-1] - 2 * REACH) + LENGTHS[-1]


@pytest.mark.parametrize("frames, reach, lengths", [(0, 16, LENGTHS), (10, 0, LENGTHS), (10, 16, ()),
                                                    (10, 16, (32, 64)), (10, 16, (128, 64))])
def test_impossible_plans_are_refused(frames, reach, lengths):
    with pytest.raises(ValueError, match="no fixed-shape plan"):
        fixed_shape_calls(frames, reach, lengths)
