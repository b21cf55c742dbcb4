"""Settings.from_env: defaults, compose-style values, prompt files and every bad value.

Every test passes an explicit mapping, so the real environment never matters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from label_studio_watsonx.errors import SettingsError
from label_studio_watsonx.settings import PROMPT_TEMPLATE, Settings

WATSONX = {"WATSONX_API_KEY": "wx-key-123", "WATSONX_PROJECT_ID": "proj-456"}


# --- defaults -------------------------------------------------------------------------


def test_defaults_from_an_empty_environment():
    settings = Settings.from_env({})

    assert settings.default_prompt == "Answer the following question\n\n{text}"
    assert settings.use_internal_prompt is False
    assert settings.port == 9090
    assert settings.host == "0.0.0.0"
    assert settings.workers == 1
    assert settings.log_level == "INFO"
    assert settings.llm_provider == "local"
    assert settings.prompt_prefix == "prompt"
    assert settings.prompt_template == PROMPT_TEMPLATE
    assert settings.basic_auth_user is None
    assert settings.auth_enabled is False
    assert settings.local_model_path is None
    assert settings.data_dir == Path("data")
    assert settings.generation.temperature == 0.0
    assert settings.generation.stop_sequences == ()
    assert settings.secrets() == []


def test_empty_values_mean_not_set():
    settings = Settings.from_env({"PORT": "", "DEFAULT_PROMPT": "  ", "LLM_PROVIDER": '""'})

    assert settings.port == 9090
    assert settings.default_prompt == "Answer the following question\n\n{text}"
    assert settings.llm_provider == "local"


def test_provider_is_watsonx_when_both_watsonx_variables_are_set():
    settings = Settings.from_env(dict(WATSONX))

    assert settings.llm_provider == "watsonx"
    assert settings.watsonx_api_key == "wx-key-123"
    assert settings.watsonx_project_id == "proj-456"


@pytest.mark.parametrize(
    "env", [{"WATSONX_API_KEY": "wx-key-123"}, {"WATSONX_PROJECT_ID": "proj-456"}]
)
def test_provider_stays_local_with_only_one_watsonx_variable(env):
    assert Settings.from_env(env).llm_provider == "local"


def test_explicit_provider_overrides_the_watsonx_guess():
    settings = Settings.from_env({**WATSONX, "LLM_PROVIDER": "Echo"})

    assert settings.llm_provider == "echo"


def test_log_level_is_upper_cased():
    assert Settings.from_env({"LOG_LEVEL": "debug"}).log_level == "DEBUG"


# --- compose-style values and escapes -------------------------------------------------


def test_compose_quotes_are_dropped_and_escapes_become_newlines():
    settings = Settings.from_env(
        {
            "DEFAULT_PROMPT": '"Summarize this:\\n\\n{text}\\tEnd"',
            "PORT": "'8080'",
            "PROMPT_PREFIX": "'question'",
        }
    )

    assert settings.default_prompt == "Summarize this:\n\n{text}\tEnd"
    assert settings.port == 8080
    assert settings.prompt_prefix == "question"


def test_only_one_pair_of_matching_quotes_is_dropped():
    settings = Settings.from_env({"DEFAULT_PROMPT": "\"'quoted' {text}\""})

    assert settings.default_prompt == "'quoted' {text}"


def test_prompt_template_escapes_are_read_too():
    settings = Settings.from_env({"PROMPT_TEMPLATE": "T:\\n{text}\\nI: {prompt}"})

    assert settings.prompt_template == "T:\n{text}\nI: {prompt}"


def test_stop_sequences_as_json_list_or_single_escaped_string():
    as_list = Settings.from_env({"STOP_SEQUENCES": '["\\n\\n", "END"]'})
    as_one = Settings.from_env({"STOP_SEQUENCES": "\\n\\n"})

    assert as_list.generation.stop_sequences == ("\n\n", "END")
    assert as_one.generation.stop_sequences == ("\n\n",)


# --- prompt from a file ---------------------------------------------------------------


def test_default_prompt_given_as_a_path_is_read_from_the_file(tmp_path):
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("From the file:\n{text}\n\\n stays literal", encoding="utf-8")

    settings = Settings.from_env({"DEFAULT_PROMPT": str(prompt_file)})

    # A file's content is used as written: real newlines, escapes not translated.
    assert settings.default_prompt == "From the file:\n{text}\n\\n stays literal"


def test_quoted_prompt_path_is_read_from_the_file(tmp_path):
    prompt_file = tmp_path / "template.txt"
    prompt_file.write_text("File template {text} / {prompt}", encoding="utf-8")

    settings = Settings.from_env({"PROMPT_TEMPLATE": f'"{prompt_file}"'})

    assert settings.prompt_template == "File template {text} / {prompt}"


def test_prompt_path_to_missing_file_stops_start_up(tmp_path):
    missing = tmp_path / "nope.txt"

    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DEFAULT_PROMPT": str(missing)})

    assert "DEFAULT_PROMPT" in str(raised.value) and "existing file" in str(raised.value)


def test_prompt_template_without_a_place_for_the_prompt_stops_start_up():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"PROMPT_TEMPLATE": "Text: {text}"})

    assert "PROMPT_TEMPLATE" in str(raised.value) and "{prompt}" in str(raised.value)


def test_versions_names_the_project_version(make_client):
    from tests.fixtures import fixture

    client = make_client()
    client.post("/predict", json=fixture("predict_interactive.json")["body"])
    remembered = client.post("/setup", json=fixture("setup.json")["body"]).json()["model_version"]
    default = client.get("/versions").json()["versions"]
    project = client.request("GET", "/versions", json={"project": "1.1796397748"}).json()
    assert project["versions"] == [remembered] and default != [remembered]


def test_unreadable_prompt_file_raises_settings_error(tmp_path):
    prompt_file = tmp_path / "binary.txt"
    prompt_file.write_bytes(b"\xff\xfe\xfa not utf-8")

    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DEFAULT_PROMPT": str(prompt_file)})

    assert caught.value.variable == "DEFAULT_PROMPT"
    assert "DEFAULT_PROMPT" in str(caught.value)


def test_long_single_line_prompt_is_used_as_text():
    long_prompt = "Please read the text carefully and answer " + "x" * 300 + "\\n\\n{text}"

    settings = Settings.from_env({"DEFAULT_PROMPT": long_prompt})

    assert settings.default_prompt == long_prompt.replace("\\n", "\n")


def test_prompt_starting_with_tilde_is_used_as_text():
    settings = Settings.from_env({"DEFAULT_PROMPT": "~approximately {text}"})

    assert settings.default_prompt == "~approximately {text}"


def test_model_path_with_unknown_user_home_raises_settings_error():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LOCAL_MODEL_PATH": "~no_such_user_qq/model.gguf"})

    assert caught.value.variable == "LOCAL_MODEL_PATH"


def test_existing_local_model_path_is_accepted(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")

    assert Settings.from_env({"LOCAL_MODEL_PATH": str(model)}).local_model_path == model


# --- USE_INTERNAL_PROMPT and its alias ------------------------------------------------


@pytest.mark.parametrize("word", ["1", "true", "YES", "on"])
def test_use_internal_prompt_true_words(word):
    assert Settings.from_env({"USE_INTERNAL_PROMPT": word}).use_internal_prompt is True


def test_use_internal_prompt_template_is_an_alias():
    settings = Settings.from_env({"USE_INTERNAL_PROMPT_TEMPLATE": "true"})

    assert settings.use_internal_prompt is True


@pytest.mark.parametrize(
    ("primary", "alias", "expected"),
    [("0", "1", False), ("1", "0", True), ("off", "yes", False)],
)
def test_use_internal_prompt_wins_over_alias(primary, alias, expected):
    settings = Settings.from_env(
        {"USE_INTERNAL_PROMPT": primary, "USE_INTERNAL_PROMPT_TEMPLATE": alias}
    )

    assert settings.use_internal_prompt is expected


def test_bad_use_internal_prompt_names_the_variable():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"USE_INTERNAL_PROMPT": "maybe"})

    assert caught.value.variable == "USE_INTERNAL_PROMPT"
    assert str(caught.value).startswith("USE_INTERNAL_PROMPT='maybe' is not valid")


# --- bad values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WORKERS": "abc"}, "WORKERS"),
        ({"WORKERS": "0"}, "WORKERS"),
        ({"PORT": "70000"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"TEMPERATURE": "5"}, "TEMPERATURE"),
        ({"TEMPERATURE": "nan"}, "TEMPERATURE"),
        ({"TOP_P": "warm"}, "TOP_P"),
        ({"LLM_PROVIDER": "gpt"}, "LLM_PROVIDER"),
        ({"LOCAL_MODEL_PATH": "/nonexistent"}, "LOCAL_MODEL_PATH"),
        ({"BASIC_AUTH_USER": "admin"}, "BASIC_AUTH_PASS"),
        ({"BASIC_AUTH_PASS": "s3cret"}, "BASIC_AUTH_USER"),
        ({"LLM_PROVIDER": "watsonx"}, "LLM_PROVIDER"),
        ({"LLM_PROVIDER": "watsonx", "WATSONX_API_KEY": "k"}, "LLM_PROVIDER"),
        ({"STOP_SEQUENCES": "[1]"}, "STOP_SEQUENCES"),
        ({"STOP_SEQUENCES": '["ok", ""]'}, "STOP_SEQUENCES"),
        ({"STOP_SEQUENCES": '["unclosed"'}, "STOP_SEQUENCES"),
        ({"LABEL_STUDIO_URL": "localhost:8080"}, "LABEL_STUDIO_URL"),
        ({"RANDOM_SEED": "-1"}, "RANDOM_SEED"),
    ],
)
def test_bad_value_raises_settings_error_naming_the_variable(env, variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)

    error = caught.value
    assert error.variable == variable
    assert str(error).startswith(f"{variable}=")
    assert f"{variable} accepts" in str(error)


def test_error_message_says_what_is_accepted():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PORT": "70000"})

    assert str(caught.value) == (
        "PORT='70000' is not valid: PORT accepts a whole number from 1 to 65535"
    )


def test_error_message_shortens_long_values():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"WORKERS": "9" * 100})

    assert caught.value.value == "9" * 100
    assert "'" + "9" * 57 + "...'" in str(caught.value)


def test_label_studio_url_trailing_slash_is_dropped():
    settings = Settings.from_env({"LABEL_STUDIO_URL": "http://localhost:8080/"})

    assert settings.label_studio_url == "http://localhost:8080"


# --- secrets --------------------------------------------------------------------------

SECRET_ENV = {
    "BASIC_AUTH_USER": "admin",
    "BASIC_AUTH_PASS": "pass-AAA-111",
    "LABEL_STUDIO_API_KEY": "lskey-BBB-222",
    "WATSONX_API_KEY": "wxkey-CCC-333",
    "WATSONX_PROJECT_ID": "project-DDD",
}


def test_secrets_lists_every_configured_secret():
    settings = Settings.from_env(dict(SECRET_ENV))

    assert settings.secrets() == ["pass-AAA-111", "lskey-BBB-222", "wxkey-CCC-333"]
    assert settings.auth_enabled is True


def test_secrets_skips_unset_ones():
    settings = Settings.from_env({"LABEL_STUDIO_API_KEY": "only-this"})

    assert settings.secrets() == ["only-this"]


def test_repr_shows_no_secret_value():
    settings = Settings.from_env(dict(SECRET_ENV))
    text = repr(settings)

    for secret in settings.secrets():
        assert secret not in text
    # Non-secret values are still shown, so the repr is useful.
    assert "admin" in text
    assert "project-DDD" in text
