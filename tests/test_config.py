"""Configuration: one TOML file, RPAHUB_* overrides, errors that name the key, no secret printed."""

import logging

import pytest

from rpahub_core.config import CONFIG_TEMPLATE, ConfigError, load_settings


def test_template_is_valid_and_gives_the_embedded_default(tmp_path):
    path = tmp_path / "rpahub.toml"
    path.write_text(CONFIG_TEMPLATE)
    settings = load_settings(path, environ={})
    assert settings.server.worker_connections == 10000
    assert settings.home == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'rpahub.db'}"


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "rpahub.toml"
    path.write_text('[server]\nbind = "127.0.0.1:9000"\nworkers = 1\n[plugins.share]\npage = 5\n')
    settings = load_settings(path, environ={
        "RPAHUB_SERVER__BIND": "0.0.0.0:8443",
        "RPAHUB_SERVER__WORKERS": "4",
        "RPAHUB_PLUGINS__SHARE__PAGE": "7",
        "RPAHUB_PLUGINS__SHARE__TITLE": "应用集市",
        "RPAHUB_DISABLE_PLUGINS": "x",  # not a setting: no double underscore
    })
    assert settings.server.bind == "0.0.0.0:8443"
    assert settings.server.workers == 4
    assert settings.plugin("share") == {"page": 7, "title": "应用集市"}


def test_plugin_defaults_sit_under_file_and_environment(tmp_path):
    path = tmp_path / "rpahub.toml"
    path.write_text('[plugins.video]\nmax_mb = 100\n')
    settings = load_settings(path, environ={"RPAHUB_PLUGINS__VIDEO__CODEC": "vp9"},
                             plugin_defaults={"video": {"max_mb": 10, "codec": "h264", "keep_days": 30}})
    assert settings.plugin("video") == {"max_mb": 100, "codec": "vp9", "keep_days": 30}


@pytest.mark.parametrize("text, env, expected", [
    ('[server]\nworkers = "many"\n', {}, "server.workers"),
    ('[server]\nworkrs = 2\n', {}, "server.workrs: unknown key"),
    ('[hub]\ntier = "county"\n', {}, "hub.tier"),
    ("", {"RPAHUB_SERVER__WORKER_CONNECTIONS": "5"}, "server.worker_connections"),
    ("[server\n", {}, "rpahub.toml"),
])
def test_errors_name_the_key(tmp_path, text, env, expected):
    path = tmp_path / "rpahub.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=env)
    assert expected in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_secrets_are_never_shown(tmp_path, caplog):
    path = tmp_path / "rpahub.toml"
    path.write_text('[database]\nurl = "postgresql://hub:s3cr3t-pw@db.local/rpahub"\n'
                    '[plugins.mail]\npassword = "smtp-s3cr3t"\nhost = "smtp.local"\n')
    settings = load_settings(path, environ={})
    assert settings.database_url == "postgresql://hub:s3cr3t-pw@db.local/rpahub"
    shown = [repr(settings), str(settings), str(settings.redacted())]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", settings, settings)
    shown.append(caplog.text)
    for text in shown:
        assert "s3cr3t-pw" not in text and "smtp-s3cr3t" not in text
    assert settings.redacted()["database"]["url"] == "postgresql://hub:****@db.local/rpahub"
    assert settings.redacted()["plugins"]["mail"] == {"password": "**********", "host": "smtp.local"}
