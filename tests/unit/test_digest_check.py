"""`relay check`, start-up and reload check the daily digest's templates when the digest is on:
it is sent long after start, so a broken override would otherwise surface only then."""

from __future__ import annotations

from pathlib import Path

from relay.config.settings import Settings
from relay.snapshot import template_problems
from tests.support.data import base_sections
from tests.support.leads import follow_up


def settings_with(tmp_path: Path, templates: Path | None, *, digest: bool) -> Settings:
    sections = base_sections(tmp_path / "state")
    if templates is not None:
        sections["render"] = {"templates_dir": str(templates)}
    if digest:
        sections["follow_up"] = follow_up(digest_at="08:00", digest_to=["head@shop.test"])
    return Settings(**sections)


def broken_digest(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    (templates / "email").mkdir(parents=True)
    (templates / "email" / "digest.html.j2").write_text("{% for %}", encoding="utf-8")
    # Fails only where a low rating is listed: the busy sample digest must reach it.
    loop = "{% for item in digest.low_items %}{{ item.rating / 0 }}{% endfor %}"
    (templates / "email" / "digest.txt.j2").write_text(loop, encoding="utf-8")
    return templates


def test_the_built_in_digest_templates_pass_the_check(tmp_path: Path) -> None:
    assert template_problems(settings_with(tmp_path, None, digest=True)) == []


def test_broken_digest_templates_are_named_when_the_digest_is_on(tmp_path: Path) -> None:
    templates = broken_digest(tmp_path)
    problems = template_problems(settings_with(tmp_path, templates, digest=True))
    assert len(problems) == 2, problems
    assert problems[0].startswith("follow_up.digest: ")
    assert "digest.html.j2 line 1:" in problems[0]
    assert "digest.txt.j2: rendering it raised ZeroDivisionError" in problems[1]
    # With the digest off, its templates are never rendered, so they are not checked.
    assert template_problems(settings_with(tmp_path, templates, digest=False)) == []
