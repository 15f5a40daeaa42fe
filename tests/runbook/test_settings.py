"""Settings: sources and their order, one-line errors, secrets never shown, the generated reference."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.errors import RunbookError
from runbook.settings import (
    Settings,
    SettingsError,
    env_lines,
    env_name,
    load_settings,
    mask_url,
    reference_markdown,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RUNBOOK_* from the caller's environment and no .env of the repo leaks into a test."""
    for key in list(os.environ):
        if key.upper().startswith("RUNBOOK_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_describe_the_guides_setup() -> None:
    s = load_settings()
    assert s.environment == "development"
    assert s.service.base_url == "https://emotionscare.com"
    assert (s.service.health_path, s.service.api_health_path) == ("/health", "/api/health")
    assert (s.kubernetes.namespace, s.kubernetes.deployment) == ("prod", "emotionscare")
    assert (s.slack.alerts_channel, s.slack.incidents_channel) == ("#alerts-critical", "#incidents")
    assert s.database.pool_size_env == "DB_POOL_SIZE" and s.database.recovery_pool_size == 10
    assert s.deploys.rollback_window_min == 15
    assert s.response.status_update_interval_min == 5 and s.response.settle_s == 30
    assert [(a.name, a.feature_flag, a.feature) for a in s.external_apis] == [
        ("hume", "FEATURE_MUSIC_GENERATION_ENABLED", "music"),
        ("openai", "FEATURE_AI_COACH_ENABLED", "coach"),
        ("spotify", "FEATURE_MUSIC_PLAYBACK_ENABLED", "playlists"),
    ]
    assert s.api("hume").health_url == "https://api.hume.ai/health"
    with pytest.raises(KeyError, match="known: hume, openai, spotify"):
        s.api("datadog")
    assert s.store.url == "sqlite:///var/incidents.sqlite3"


def test_environment_variables_reach_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_SLACK_INCIDENTS_CHANNEL", "#inc-test")
    monkeypatch.setenv("RUNBOOK_KUBERNETES_VERIFY_SSL", "false")
    monkeypatch.setenv("RUNBOOK_KUBERNETES_API_URL", "http://127.0.0.1:6443/")
    monkeypatch.setenv("RUNBOOK_RESPONSE_STATUS_UPDATE_INTERVAL_MIN", "10")
    monkeypatch.setenv("RUNBOOK_INTAKE_TOKENS", '{"alertmanager": "am-token"}')
    monkeypatch.setenv(
        "RUNBOOK_EXTERNAL_APIS",
        '[{"name": "hume", "health_url": "http://127.0.0.1:9/health",'
        ' "feature_flag": "FEATURE_MUSIC_GENERATION_ENABLED", "feature": "music"}]',
    )
    monkeypatch.setenv("runbook_environment", "sandbox")  # case-insensitive
    s = load_settings()
    assert s.slack.incidents_channel == "#inc-test"
    assert s.kubernetes.verify_ssl is False
    assert s.kubernetes.api_url == "http://127.0.0.1:6443"
    assert s.response.status_update_interval_min == 10
    assert s.intake.tokens["alertmanager"].get_secret_value() == "am-token"
    assert [a.name for a in s.external_apis] == ["hume"]
    assert s.environment == "sandbox"


def test_source_order_overrides_env_dotenv_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "runbook.toml"
    toml.write_text(
        '[slack]\nincidents_channel = "#from-toml"\nalerts_channel = "#toml-alerts"\n'
        'devops_channel = "#toml-devops"\noncall_handle = "@toml"\n'
        '[[external_apis]]\nname = "hume"\nhealth_url = "https://hume.example/health"\n'
        'feature_flag = "FEATURE_MUSIC_GENERATION_ENABLED"\nfeature = "music"\n'
    )
    (tmp_path / ".env").write_text(
        "RUNBOOK_SLACK_INCIDENTS_CHANNEL=#from-dotenv\nRUNBOOK_SLACK_ALERTS_CHANNEL=#dotenv-alerts\n"
        "RUNBOOK_SLACK_DEVOPS_CHANNEL=#dotenv-devops\n"
    )
    monkeypatch.setenv("RUNBOOK_CONFIG", str(toml))
    monkeypatch.setenv("RUNBOOK_SLACK_INCIDENTS_CHANNEL", "#from-env")
    monkeypatch.setenv("RUNBOOK_SLACK_ALERTS_CHANNEL", "#env-alerts")
    s = load_settings(slack={"incidents_channel": "#from-override"})
    assert s.slack.incidents_channel == "#from-override"  # override > env
    assert s.slack.alerts_channel == "#env-alerts"  # env > .env
    assert s.slack.devops_channel == "#dotenv-devops"  # .env > TOML
    assert s.slack.oncall_handle == "@toml"  # TOML > default
    assert s.slack.lead_handle == "@team-lead"  # default
    assert s.external_apis[0].health_url == "https://hume.example/health"
    assert s.config == toml
    assert load_settings(env_file=None).slack.devops_channel == "#toml-devops"  # .env ignored


def test_toml_file_by_argument(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('environment = "staging"\n[kubernetes]\nnamespace = "staging"\n')
    s = load_settings(config=toml)
    assert (s.environment, s.kubernetes.namespace) == ("staging", "staging")


BAD = [
    ("RUNBOOK_SLACK_INCIDENTS_CHANNEL", "", "RUNBOOK_SLACK_INCIDENTS_CHANNEL: must start with '#' (got '')"),
    (
        "RUNBOOK_SLACK_ALERTS_CHANNEL",
        "alerts",
        "RUNBOOK_SLACK_ALERTS_CHANNEL: must start with '#' (got 'alerts')",
    ),
    ("RUNBOOK_SLACK_LEAD_HANDLE", "lead", "RUNBOOK_SLACK_LEAD_HANDLE: must start with '@' (got 'lead')"),
    ("RUNBOOK_SERVICE_BASE_URL", "emotionscare.com", "RUNBOOK_SERVICE_BASE_URL: must be an http(s) URL"),
    (
        "RUNBOOK_SERVICE_HEALTH_PATH",
        "health",
        "RUNBOOK_SERVICE_HEALTH_PATH: must start with '/' (got 'health')",
    ),
    (
        "RUNBOOK_SERVICE_HTTP_TIMEOUT_S",
        "soon",
        "RUNBOOK_SERVICE_HTTP_TIMEOUT_S: Input should be a valid number, unable to parse string as a number "
        "(got 'soon')",
    ),
    (
        "RUNBOOK_RESPONSE_STATUS_UPDATE_INTERVAL_MIN",
        "4",
        "RUNBOOK_RESPONSE_STATUS_UPDATE_INTERVAL_MIN: Input should be greater than or equal to 5 (got '4')",
    ),
    (
        "RUNBOOK_ENVIRONMENT",
        "prod",
        "RUNBOOK_ENVIRONMENT: Input should be 'sandbox', 'development', 'staging'",
    ),
    ("RUNBOOK_KUBERNETES_NAMESPACE", "Prod_NS", "RUNBOOK_KUBERNETES_NAMESPACE: must be a Kubernetes name"),
    ("RUNBOOK_INTAKE_PORT", "70000", "RUNBOOK_INTAKE_PORT: Input should be less than or equal to 65535"),
    (
        "RUNBOOK_STORE_URL",
        "mysql://u:hunter2@h/db",
        "RUNBOOK_STORE_URL: must be sqlite:///path or postgresql://",
    ),
    ("RUNBOOK_EXTERNAL_APIS", "[{", "RUNBOOK_EXTERNAL_APIS: not valid JSON"),
    ("RUNBOOK_INTAKE_TOKENS", "{nope", "RUNBOOK_INTAKE_TOKENS: not valid JSON"),
    (
        "RUNBOOK_EXTERNAL_APIS",
        '[{"name": "hume", "health_url": "ftp://x", "feature_flag": "F", "feature": "music"}]',
        "RUNBOOK_EXTERNAL_APIS[0].health_url: must be an http(s) URL (got 'ftp://x')",
    ),
    (
        "RUNBOOK_EXTERNAL_APIS",
        '[{"name": "a", "health_url": "http://a", "feature_flag": "F", "feature": "f"},'
        ' {"name": "a", "health_url": "http://b", "feature_flag": "G", "feature": "g"}]',
        "RUNBOOK_EXTERNAL_APIS: duplicate API name 'a'",
    ),
    (
        "RUNBOOK_PREFECT_RESPOND_DEPLOYMENT",
        "respond",
        "RUNBOOK_PREFECT_RESPOND_DEPLOYMENT: must be 'flow-name/",
    ),
    ("RUNBOOK_CONFIG", "/nonexistent/runbook.toml", "RUNBOOK_CONFIG: file not found"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_invalid_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert "hunter2" not in text
    assert isinstance(info.value, RunbookError)


def test_several_errors_report_the_first_and_count_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_SLACK_INCIDENTS_CHANNEL", "")
    monkeypatch.setenv("RUNBOOK_SLACK_ALERTS_CHANNEL", "")
    with pytest.raises(SettingsError, match=r"^RUNBOOK_SLACK_ALERTS_CHANNEL: .* \(and 1 more\)$"):
        load_settings()


def test_invalid_toml_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[slack\n")
    monkeypatch.setenv("RUNBOOK_CONFIG", str(bad))
    with pytest.raises(SettingsError, match=r"^RUNBOOK_CONFIG: .*bad.toml is not valid TOML"):
        load_settings()


def test_an_invalid_secret_is_named_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_INTAKE_TOKENS", '{"alertmanager": 123456789}')
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("RUNBOOK_INTAKE_TOKENS[alertmanager]: ")
    assert "123456789" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RUNBOOK_KUBERNETES_VERIFY_SSL": "false"},
            "RUNBOOK_KUBERNETES_VERIFY_SSL: must be true in production",
        ),
        ({"RUNBOOK_INTAKE_HOST": "0.0.0.0"}, "RUNBOOK_INTAKE_TOKENS: required in production"),
    ],
)
def test_production_refuses_insecure_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("RUNBOOK_ENVIRONMENT", "production")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=f"^{message}"):
        load_settings()
    monkeypatch.setenv("RUNBOOK_ENVIRONMENT", "staging")  # allowed outside production
    load_settings()


def test_production_accepts_a_secured_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_ENVIRONMENT", "production")
    monkeypatch.setenv("RUNBOOK_INTAKE_HOST", "0.0.0.0")
    monkeypatch.setenv("RUNBOOK_INTAKE_TOKENS", '{"alertmanager": "t"}')
    assert load_settings().intake.loopback_only is False
    monkeypatch.delenv("RUNBOOK_INTAKE_TOKENS")
    monkeypatch.setenv("RUNBOOK_INTAKE_HOST", "::1")
    assert load_settings().intake.loopback_only is True  # no slack token, no pagerduty key: still fine


SECRETS = {
    "RUNBOOK_SERVICE_ADMIN_TOKEN": "sekrit-admin-1",
    "RUNBOOK_KUBERNETES_TOKEN": "sekrit-k8s-2",
    "RUNBOOK_DATABASE_DSN": "postgresql://app:sekrit-db-3@db/emotionscare",
    "RUNBOOK_DATABASE_SUPABASE_TOKEN": "sekrit-supabase-4",
    "RUNBOOK_SLACK_TOKEN": "sekrit-slack-5",
    "RUNBOOK_PAGERDUTY_ROUTING_KEY": "sekrit-pd-6",
    "RUNBOOK_SENTRY_TOKEN": "sekrit-sentry-7",
    "RUNBOOK_INTAKE_TOKENS": '{"alertmanager": "sekrit-intake-8"}',
    "RUNBOOK_INTAKE_SENTRY_CLIENT_SECRET": "sekrit-hook-9",
    "RUNBOOK_STORE_URL": "postgresql://runbook:sekrit-store-10@127.0.0.1:5432/runbook",
    "RUNBOOK_EXTERNAL_APIS": '[{"name": "hume", "health_url": "https://api.hume.ai/health",'
    ' "feature_flag": "FEATURE_MUSIC_GENERATION_ENABLED", "feature": "music", "token": "sekrit-hume-11"}]',
}


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.slack.token is not None and s.slack.token.get_secret_value() == "sekrit-slack-5"
    assert s.store.url.endswith("sekrit-store-10@127.0.0.1:5432/runbook")  # the store still gets it
    shown = [repr(s), str(s), s.model_dump_json(), str(s.model_dump()), "\n".join(env_lines(s))]
    for text in shown:
        assert "sekrit" not in text
    assert "RUNBOOK_STORE_URL='postgresql://runbook:**********@127.0.0.1:5432/runbook'" in env_lines(s)


def test_env_lines_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RUNBOOK_DEPLOYS_REPO_PATH", "/srv/emotionscare")
    original = load_settings()
    lines = env_lines(original, reveal_secrets=True)
    for k in SECRETS:
        monkeypatch.delenv(k)
    monkeypatch.delenv("RUNBOOK_DEPLOYS_REPO_PATH")
    for line in lines:
        if not line.startswith("#"):
            name, _, value = line.partition("=")
            (parsed,) = shlex.split(value) or [""]
            monkeypatch.setenv(name, parsed)
    again = load_settings()
    assert env_lines(again, reveal_secrets=True) == lines


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("environment",), "RUNBOOK_ENVIRONMENT"),
        (("slack", "incidents_channel"), "RUNBOOK_SLACK_INCIDENTS_CHANNEL"),
        (("external_apis", 0, "health_url"), "RUNBOOK_EXTERNAL_APIS[0].health_url"),
        (("intake", "tokens", "alertmanager"), "RUNBOOK_INTAKE_TOKENS[alertmanager]"),
    ],
)
def test_env_name(loc: tuple[str | int, ...], name: str) -> None:
    assert env_name(*loc) == name


def test_mask_url() -> None:
    assert mask_url("postgresql://u:pw@h:5432/db") == "postgresql://u:**********@h:5432/db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_url("sqlite:///var/x.sqlite3") == "sqlite:///var/x.sqlite3"


def _run_cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("RUNBOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "runbook.settings"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_effective_settings_masked(tmp_path: Path) -> None:
    done = _run_cli(tmp_path, RUNBOOK_SLACK_TOKEN="sekrit-cli", RUNBOOK_SLACK_INCIDENTS_CHANNEL="#inc-cli")
    assert done.returncode == 0, done.stderr
    assert "RUNBOOK_SLACK_INCIDENTS_CHANNEL='#inc-cli'" in done.stdout.splitlines()
    assert "RUNBOOK_SLACK_TOKEN='**********'" in done.stdout.splitlines()
    assert "sekrit" not in done.stdout + done.stderr


def test_cli_invalid_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    done = _run_cli(tmp_path, RUNBOOK_SLACK_INCIDENTS_CHANNEL="")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "RUNBOOK_SLACK_INCIDENTS_CHANNEL: must start with '#' (got '')\n"


def test_reference_documents_every_setting() -> None:
    doc = reference_markdown()
    for line in env_lines(Settings()):
        name = line.lstrip("# ").split("=")[0].split(" ")[0]
        assert f"`{name}`" in doc


def test_the_intakes_bounds_reach_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The intake's per-request bounds (issue 15) are settings, and `IntakeConfig` takes them from there."""
    from intake.config import IntakeConfig

    monkeypatch.setenv("RUNBOOK_INTAKE_BODY_TIMEOUT_S", "3.5")
    monkeypatch.setenv("RUNBOOK_INTAKE_PARSE_THREADS", "4")
    monkeypatch.setenv("RUNBOOK_INTAKE_SENTRY_TIMESTAMP_WINDOW_S", "60")
    monkeypatch.setenv("RUNBOOK_INTAKE_MAX_ALERTS_PER_REQUEST", "10")
    config = IntakeConfig.from_settings(load_settings())
    assert (config.body_timeout_s, config.parse_threads) == (3.5, 4)
    assert (config.sentry_timestamp_window_s, config.max_alerts_per_request) == (60, 10)


def test_an_intake_bound_out_of_range_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_INTAKE_BODY_TIMEOUT_S", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("RUNBOOK_INTAKE_BODY_TIMEOUT_S: ")
    assert "\n" not in str(info.value)
