"""unknown_names: given names that are not known, each with the closest known one."""

from trt_perception.core.unknown_names import describe, unknown_names

DECLARED = ["score_threshold", "model_config", "backend", "detector.score_threshold", "qos_depth"]


def test_misspelt_names_get_the_closest_declared_name():
    given = ["score_treshold", "backend", "modle_config", "detector.score_treshhold"]
    assert unknown_names(given, DECLARED) == [("detector.score_treshhold", "detector.score_threshold"),
                                              ("modle_config", "model_config"),
                                              ("score_treshold", "score_threshold")]


def test_names_like_nothing_declared_have_no_suggestion_and_known_names_pass():
    assert unknown_names(["frobnicate", "qos_depth"], DECLARED) == [("frobnicate", None)]
    assert unknown_names(DECLARED, DECLARED) == []


def test_description_names_each_with_its_suggestion():
    assert describe([("modle_config", "model_config"), ("frobnicate", None)]) == \
        "modle_config (did you mean model_config?), frobnicate"
