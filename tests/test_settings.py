"""GenerationSettings.checked(): what is refused, what is corrected, and that a seed is always recorded."""

import pytest

from vid2vid_widgets.errors import InvalidSettingsError
from vid2vid_widgets.generation.base import MAX_SEED, GenerationSettings


def test_defaults_match_the_documented_ones():
    s = GenerationSettings()
    assert (s.num_frames, s.num_steps, s.guidance_scale, s.height, s.width, s.fps, s.scheduler) == (
        16, 25, 9.0, 256, 256, 8, "dpm++")


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_is_refused_with_a_next_step(prompt):
    with pytest.raises(InvalidSettingsError, match="empty.*Generate"):
        GenerationSettings(prompt=prompt).checked()


@pytest.mark.parametrize("field,value,word", [
    ("num_frames", 0, "frames"), ("num_steps", 0, "steps"), ("fps", 0, "fps"),
    ("seed", -1, "seed"), ("seed", MAX_SEED + 1, "seed"), ("guidance_scale", -1.0, "guidance"),
    ("scheduler", "lms", "scheduler"), ("num_frames", 2.5, "frames"),
])
def test_out_of_range_settings_are_refused(field, value, word):
    with pytest.raises(InvalidSettingsError, match=word):
        GenerationSettings(prompt="a cat", **{field: value}).checked()


def test_sizes_are_rounded_to_multiples_of_eight_with_a_notice():
    fixed, notices = GenerationSettings(prompt="a cat", height=250, width=100).checked()
    assert (fixed.height, fixed.width) == (248, 104)
    assert len(notices) == 2 and "250" in notices[0] and "248" in notices[0]


def test_a_missing_seed_is_drawn_and_kept_and_a_given_one_is_untouched():
    fixed, _ = GenerationSettings(prompt="a cat").checked()
    assert isinstance(fixed.seed, int) and 0 <= fixed.seed <= MAX_SEED
    again, notices = fixed.checked()
    assert again == fixed and notices == []
    assert GenerationSettings(prompt="x", seed=7).checked()[0].seed == 7


def test_prompt_is_stripped_and_round_trips_through_a_dict():
    fixed, _ = GenerationSettings(prompt="  a dog  ", seed=3).checked()
    assert fixed.prompt == "a dog"
    assert GenerationSettings.from_dict({**fixed.to_dict(), "unknown_future_key": 1}) == fixed
