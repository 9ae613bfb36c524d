"""A bad base URL is one line and exit 2, before anything is sent, wherever it came from."""

from __future__ import annotations

import pytest
from _cli import clean_env, run_maker

from maker.backends import open_backend
from maker.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

BAD = [
    # url,                          in the message
    ("http://127.0.0.1:99999/v1", "its port must be a number in 1..65535"),
    ("http://127.0.0.1:abc/v1", "its port must be a number in 1..65535"),
    ("http://[::1/v1", "Invalid IPv6 URL"),
    ("http://127.0.0.1:0/v1", "has no usable port"),
    ("http://127.0.0.1:/v1", "has no usable port"),
    ("ftp://127.0.0.1:8/v1", "must look like http://HOST:PORT/v1"),
]


@pytest.mark.parametrize(("url", "message"), BAD, ids=[u for u, _ in BAD])
def test_a_bad_base_url_is_a_config_error_that_shows_it_as_given(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="from --base-url") as caught:
        open_backend("openai/m", base_url=url)
    assert message in str(caught.value) and repr(url) in str(caught.value)  # the port as given, not hidden


@pytest.mark.parametrize("where", ["--base-url", "MAKER_BASE_URL", "OPENAI_BASE_URL"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "http://[::1/v1"])
def test_through_the_cli_it_is_one_line_naming_where_it_came_from(tmp_path, where: str, url: str) -> None:
    args = ["hanoi", "--disks", "2", "--model", "openai/m", "--no-trace"]
    if where == "--base-url":
        done = run_maker(*args, "--base-url", url, cwd=tmp_path)
    else:
        done = run_maker(*args, cwd=tmp_path, env=clean_env(**{where: url}))
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"maker: error: base URL {url!r} (from ") and where in line


def test_credentials_in_a_broken_url_are_not_shown(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_backend("openai/m", base_url="http://user:secret@127.0.0.1:abc/v1?key=sk-1")
    assert "secret" not in str(caught.value) and "sk-1" not in str(caught.value)
    assert "'http://***@127.0.0.1:abc/v1'" in str(caught.value)
