"""The Renderer: turns a conversation into complete email and Slack content for one action."""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import css_inline
import jinja2

from relay.config.settings import EmailAction, RenderSettings, SlackAction
from relay.leads.links import LeadLinks
from relay.leads.texts import follow_up_view
from relay.model.category import Category
from relay.model.content import EmailContent, SlackContent, TeamsContent
from relay.model.conversation import Conversation
from relay.model.errors import ConfigError
from relay.render import environment, headers, mime, preinline, teams
from relay.render.i18n import Translator
from relay.render.samples import check_conversations
from relay.render.templating import BodyTemplates
from relay.render.view import (
    URL_PLACEHOLDERS,
    ConversationView,
    ViewLimits,
    build_view,
    history_line,
    link,
    one_line,
)

SUBJECT_TEMPLATE = "email/subject.txt.j2"
_BOUNDARY_BYTES = 128  # generous: the generated boundaries are about 40 characters
ATTACHMENT_NAME = "transcript.txt"
ENVELOPES_KEPT = 256  # recipient lists a Renderer remembers the envelope of (``_envelope``)
# A <style data-shared> block is never inlined (Renderer.inline_css): a comment stands in for
# it while css-inline runs.
_SHARED_STYLE = re.compile(r"<style data-shared>.*?</style>", re.DOTALL)
_SHARED_MARK = "<!--relay-shared-style-->"
# The names of relay.render.slack.SLACK_BUILDERS, for checking a rule's Slack template without
# importing that module: it imports slack_sdk (30-50 ms, ~2 MB), which is needed only to build
# a Slack message (tests/app/test_startup_footprint.py holds the two equal).
SLACK_TEMPLATES = ("alert",)


def _raised(exc: Exception) -> str:
    """A template's own failure (not a Jinja error: a division by zero, a recursive include)
    as one line for `relay check` and the start-up refusal."""
    return f"rendering it raised {type(exc).__name__}: {one_line(str(exc))}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def check_url_template(template: str | None) -> None:
    """Raise ConfigError unless ``template`` is an http(s) URL using only known placeholders."""
    if template is None:
        return
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(template) if field}
        sample = template.format(**dict.fromkeys(URL_PLACEHOLDERS, "1"))
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        # AttributeError: a field such as "{chat_id.x}" (str.format reads attributes).
        raise ConfigError(f"render.conversation_url: {exc}") from exc
    unknown = names - set(URL_PLACEHOLDERS)
    if unknown:
        raise ConfigError(
            f"render.conversation_url: unknown placeholder(s) {sorted(unknown)};"
            f" use {', '.join('{' + n + '}' for n in URL_PLACEHOLDERS)}"
        )
    found = link(sample, sample)
    if found is None or found.url is None:
        raise ConfigError("render.conversation_url: must be an absolute http(s) URL")


def flattened_size(message: Message, folded: Mapping[int, int] | None = None) -> int:
    """At least ``len(message.as_bytes())``, without flattening the whole message here, which
    would fix a random multipart boundary now instead of when the message is sent, and
    without encoding the bodies again: a body is already encoded, each line end becomes CRLF.
    ``folded``: the folded length of shared header objects by identity
    (``MimeBuilder.folded``), so those are not folded again for every email."""
    size = 2  # the empty line after the headers
    for name, value in message.raw_items():
        known = None if folded is None else folded.get(id(value))
        size += known if known is not None else len(message.policy.fold_binary(name, value))
    parts = message.get_payload()
    if isinstance(parts, str):
        # Each line end becomes CRLF; a last line without one gets one.
        return size + len(parts.encode("utf-8", "surrogateescape")) + parts.count("\n") + 2
    if not message.is_multipart() or not isinstance(parts, list):
        return len(message.as_bytes())
    for part in cast(list[Message], parts):  # a multipart's payload is its list of parts
        # A boundary line before each part (and one at the end, and the boundary parameter).
        size += _BOUNDARY_BYTES + flattened_size(part, folded)
    return size + 2 * _BOUNDARY_BYTES


def email_template_paths(name: str) -> dict[str, str]:
    return {
        "html": f"email/{name}.html.j2",
        "text": f"email/{name}.txt.j2",
        "subject": SUBJECT_TEMPLATE,
    }


def slack_text_path(name: str) -> str:
    return f"slack/{name}.txt.j2"


class Renderer:
    """Pure and deterministic: templates are loaded here, rendering does no I/O."""

    def __init__(
        self,
        settings: RenderSettings,
        *,
        from_address: str,
        clock: Callable[[], datetime] = _utc_now,
        compile_all: bool = True,
    ) -> None:
        """``clock`` gives the Date header: the time the email is rendered, right before it is
        sent (never the conversation's own dates). ``compile_all``: compile every template
        and inline the HTML templates' CSS now, for rendering many emails; False compiles a
        template when it is first used and inlines CSS per email, which is all that checking
        templates (``check``, ``check_subject``) needs: it finds the same problems."""
        check_url_template(settings.conversation_url)
        try:
            zone = ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"render.timezone: unknown time zone {settings.timezone!r}") from exc
        if settings.templates_dir is not None and not settings.templates_dir.is_dir():
            raise ConfigError(f"render.templates_dir: {settings.templates_dir} is not a directory")
        self._translator = Translator(settings.locale, zone)
        # The first try shows this much; an email over the budget is rendered again with
        # smaller limits (fewer, shorter messages), never refused.
        self._limits = ViewLimits(
            messages=settings.max_messages, text_chars=settings.max_email_bytes // 8
        )
        self._email_bytes = settings.max_email_bytes
        self._html_bytes = settings.max_html_bytes
        self._url_template = settings.conversation_url
        self._clock = clock
        self._from_address = from_address
        self._email_env = environment.email_environment(settings.templates_dir)
        self._slack_env = environment.slack_environment(settings.templates_dir)
        self._subject_env = environment.subject_environment()
        self._mime = mime.MimeBuilder()
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self.bodies = BodyTemplates()  # webhook body templates, compiled on first use
        self._envelopes: dict[tuple[str, ...], tuple[str, ...]] = {}  # ``_envelope``
        self._templates: dict[str, jinja2.Template] = {}
        self._subjects: dict[str, jinja2.Template] = {}
        # HTML templates with their CSS inlined once, here; the rest are inlined per email.
        self._inlined: dict[str, jinja2.Template] = {}
        if compile_all:
            self._preload(self._email_env, "email/")
            self._preload(self._slack_env, "slack/")
            self._preinline()

    # -- public API -------------------------------------------------------------------------

    def email(
        self,
        conversation: Conversation,
        category: Category,
        action: EmailAction,
        *,
        message_id: str,
        earlier: Sequence[tuple[str, float]] = (),
        follow_up: LeadLinks | None = None,
        references: Sequence[str] = (),
    ) -> EmailContent:
        """The email, within ``max_email_bytes`` (with the built-in templates): the newest
        messages that fit, and a note saying how many earlier ones were left out. The HTML
        part stays within ``max_html_bytes``; when that leaves messages out, the whole
        transcript is attached as text. ``earlier`` are the visitor's earlier conversations
        (category, Unix seconds), as the store's ``visitor_history`` gives them;
        ``follow_up``: the lead's claim and done links, shown in their own block;
        ``references``: the Message-IDs of earlier emails about this visitor that were
        actually sent, oldest first (the store's ``sent_email_ids``), for In-Reply-To and
        References; none for a first email."""
        history = history_line(earlier, self._translator)
        limits = self._limits
        draft = self._email(
            conversation,
            category,
            action,
            message_id=message_id,
            limits=limits,
            history=history,
            follow_up=follow_up,
            references=references,
        )
        while draft.size() > self._email_bytes:
            smaller = limits.smaller()
            if smaller is None:
                break  # only an override template can be this large: send it as it is
            limits = smaller
            draft = self._email(
                conversation,
                category,
                action,
                message_id=message_id,
                limits=limits,
                history=history,
                follow_up=follow_up,
                references=references,
            )
        # The message object is made from the draft only if asked for; the render helper
        # writes the bytes to send from it directly (``EmailContent.flat_for``).
        return EmailContent(recipients=self._envelope(action), source=draft)

    def _envelope(self, action: EmailAction) -> tuple[str, ...]:
        """``envelope_addresses`` of the action's recipients, worked out once per list of
        recipients (the rules' own: the same for every email of an action)."""
        given = (*action.to, *action.cc, *action.bcc)
        found = self._envelopes.get(given)
        if found is None:
            if len(self._envelopes) >= ENVELOPES_KEPT:
                self._envelopes.clear()
            found = self._envelopes[given] = tuple(headers.envelope_addresses(given))
        return found

    def _email(
        self,
        conversation: Conversation,
        category: Category,
        action: EmailAction,
        *,
        message_id: str,
        limits: ViewLimits,
        history: str | None,
        follow_up: LeadLinks | None = None,
        references: Sequence[str] = (),
    ) -> mime.Draft:
        links = follow_up_view(follow_up, self._translator.locale)
        paths = email_template_paths(action.template)
        view = self._view(conversation, category, limits, history)
        variables = self._variables(conversation, category, view)
        variables["follow_up"] = links
        html = self._html(paths["html"], variables)
        text = self._template(paths["text"], self._email_env).render(variables)
        subject = self._subject(action, variables)
        attachment: str | None = None
        shown = len(view.messages)
        while len(html.encode("utf-8")) > self._html_bytes and shown > 1:
            # Fewer messages in proportion to the excess, and the whole transcript attached.
            if attachment is None:
                attachment = self._attachment(conversation, category, paths["text"], limits)
            size = len(html.encode("utf-8"))
            shown = min(shown - 1, max(1, int(shown * self._html_bytes / size * 0.9)))
            smaller = dataclasses.replace(limits, messages=shown)
            view = self._view(conversation, category, smaller, history)
            variables = self._variables(conversation, category, view, attached=True)
            variables["follow_up"] = links
            html = self._html(paths["html"], variables)
            text = self._template(paths["text"], self._email_env).render(variables)
        fields = headers.header_fields(
            from_address=self._from_address,
            to=action.to,
            cc=action.cc,
            reply_to=headers.visitor_address(view.visitor_name, view.reply_email),
            subject=subject,
            message_id=message_id,
            date=self._clock(),  # a datetime: the header is made from it, never parsed
            references=references,
            parsed=self._mime.header,
        )
        # multipart/alternative; with an attachment multipart/mixed around it, the whole
        # transcript as a text file.
        return self._mime.draft(fields, text, html, attachment, ATTACHMENT_NAME)

    def _view(
        self,
        conversation: Conversation,
        category: Category,
        limits: ViewLimits,
        history: str | None = None,
    ) -> ConversationView:
        return build_view(
            conversation,
            category,
            self._translator,
            limits,
            url_template=self._url_template,
            history=history,
        )

    def _attachment(
        self, conversation: Conversation, category: Category, path: str, limits: ViewLimits
    ) -> str:
        """The plain-text transcript with up to ``max_messages`` messages: the attachment may
        take most of the email's budget (the outer loop shrinks it with the rest)."""
        wide = dataclasses.replace(limits, text_chars=limits.text_chars * 5)
        view = self._view(conversation, category, wide)
        variables = self._variables(conversation, category, view)
        return self._template(path, self._email_env).render(variables)

    def _html(self, path: str, variables: dict[str, Any]) -> str:
        inlined = self._inlined.get(path)
        if inlined is not None:
            return inlined.render(variables)
        return self.inline_css(self._template(path, self._email_env).render(variables))

    def _preinline(self) -> None:
        """Inline the CSS of every HTML email template into its source, where that gives the
        same HTML as inlining each email (checked on the sample conversations)."""
        samples = [
            self._variables(
                conversation,
                category,
                self._view(conversation, category, self._limits, history),
                attached=attached,
            )
            for conversation, category in check_conversations()
            for history, attached in ((None, False), ("history", True))
        ]
        paths = self._email_env.list_templates(
            filter_func=lambda name: name.startswith("email/") and name.endswith(".html.j2")
        )
        for path in paths:
            template = preinline.preinlined_template(
                self._email_env, path, self.inline_css, samples
            )
            if template is not None:
                self._inlined[path] = template

    def preinlined(self, path: str) -> bool:
        """Whether the HTML template ``path`` has its CSS inlined at load (else per email)."""
        return path in self._inlined

    def slack(
        self,
        conversation: Conversation,
        category: Category,
        action: SlackAction,
        *,
        earlier: Sequence[tuple[str, float]] = (),
    ) -> SlackContent:
        from relay.render import slack  # noqa: PLC0415 -- see SLACK_TEMPLATES

        builder = slack.SLACK_BUILDERS.get(action.template)
        if builder is None:
            raise ConfigError(f"unknown Slack template {action.template!r}")
        history = history_line(earlier, self._translator)
        view = self._view(conversation, category, self._limits, history)
        variables = self._variables(conversation, category, view)
        text_template = self._template(slack_text_path(action.template), self._slack_env)
        blocks = slack.to_payload(builder(view, self._translator))
        return SlackContent(
            channel=action.channel,
            text=slack.fallback_text(text_template.render(variables)),
            blocks=blocks,
        )

    def teams(
        self,
        conversation: Conversation,
        category: Category,
        *,
        follow_up: LeadLinks | None = None,
    ) -> TeamsContent:
        """The Adaptive Card of a ``teams`` action, from the view the Slack message uses;
        ``follow_up``: the lead's links, for a card about a lead (a claim button)."""
        view = self._view(conversation, category, self._limits)
        links = follow_up_view(follow_up, self._translator.locale)
        claim = None if links is None else (links.claim_label, links.claim_url)
        return TeamsContent(card=teams.build_card(view, self._translator, claim))

    def check(self, template_names: Iterable[tuple[str, str]]) -> list[str]:
        """Compile every named template and render it with sample conversations."""
        problems: list[str] = []
        for kind, name in template_names:
            if kind == "email":
                problems.extend(self._check_email(name))
            elif kind == "slack":
                problems.extend(self._check_slack(name))
            else:
                problems.append(f"unknown template kind {kind!r} for template {name!r}")
        return problems

    def check_subject(self, subject: str) -> list[str]:
        """Problems with a rule's ``subject`` template string ([] when it renders)."""
        try:
            template = self._subject_env.from_string(subject)
            for conversation, category in check_conversations():
                view = self._view(conversation, category, self._limits, "history")
                template.render(self._variables(conversation, category, view))
        except jinja2.TemplateError as exc:
            return [f"subject {subject!r}: {exc}"]
        except Exception as exc:  # the template's own code raised (1/0 ...)
            return [f"subject {subject!r}: {_raised(exc)}"]
        return []

    def inline_css(self, html: str) -> str:
        """``html`` with its CSS inlined, except ``<style data-shared>`` blocks: those are
        kept as they are, so their classes stay shared instead of repeated inline."""
        shared = _SHARED_STYLE.findall(html)
        if not shared:
            return str(self._inliner.inline(html))
        hidden = _SHARED_STYLE.sub(_SHARED_MARK, html)
        inlined = str(self._inliner.inline(hidden))
        if inlined.count(_SHARED_MARK) != len(shared):
            return str(self._inliner.inline(html))  # the parser moved them: inline everything
        pieces = inlined.split(_SHARED_MARK)
        return pieces[0] + "".join(
            block + rest for block, rest in zip(shared, pieces[1:], strict=True)
        )

    # -- helpers ----------------------------------------------------------------------------

    def _variables(
        self,
        conversation: Conversation,
        category: Category,
        view: ConversationView,
        *,
        attached: bool = False,
    ) -> dict[str, Any]:
        return {
            "attached": attached,
            "view": view,
            "t": self._translator,
            "labels": self._translator.labels,
            "conversation": conversation,
            "category": category.value,
            "follow_up": None,  # the lead's links, for emails about a lead (relay.leads)
        }

    def _preload(self, env: jinja2.Environment, prefix: str) -> None:
        """Compile every template once so rendering never touches the filesystem."""
        for path in env.list_templates(filter_func=lambda name: name.startswith(prefix)):
            try:
                self._templates[f"{id(env)}:{path}"] = env.get_template(path)
            except jinja2.TemplateError:
                continue  # check() reports broken templates with their line numbers

    def _template(self, path: str, env: jinja2.Environment) -> jinja2.Template:
        key = f"{id(env)}:{path}"
        template = self._templates.get(key)
        if template is None:
            try:
                template = env.get_template(path)
            except jinja2.TemplateNotFound as exc:
                raise ConfigError(f"template {path} does not exist") from exc
            self._templates[key] = template
        return template

    def _subject(self, action: EmailAction, variables: dict[str, Any]) -> str:
        default = self._template(SUBJECT_TEMPLATE, self._email_env)
        if action.subject is None:
            return default.render(variables)
        try:
            template = self._subjects.get(action.subject)
            if template is None:
                template = self._subject_env.from_string(action.subject)
                self._subjects[action.subject] = template
            return template.render(variables)
        except Exception:  # a Jinja error or the template's own code raising
            # A broken rule subject must not stop delivery; check_subject() reports it up front.
            return default.render(variables)

    def _check_email(self, name: str) -> list[str]:
        problems = []
        for part, path in email_template_paths(name).items():
            problem = self._check_render(path, self._email_env)
            if problem:
                problems.append(f"email template {name!r} ({part}): {problem}")
        return problems

    def _check_slack(self, name: str) -> list[str]:
        if name not in SLACK_TEMPLATES:
            known = ", ".join(sorted(SLACK_TEMPLATES))
            return [f"slack template {name!r} does not exist (known: {known})"]
        problem = self._check_render(slack_text_path(name), self._slack_env)
        return [f"slack template {name!r}: {problem}"] if problem else []

    def _check_render(self, path: str, env: jinja2.Environment) -> str | None:
        try:
            template = env.get_template(path)
            self._templates[f"{id(env)}:{path}"] = template
            for conversation, category in check_conversations():
                view = self._view(conversation, category, self._limits, "history")
                template.render(self._variables(conversation, category, view))
        except jinja2.TemplateNotFound:
            return f"{path} does not exist"
        except jinja2.TemplateSyntaxError as exc:
            return f"{exc.filename or path} line {exc.lineno}: {exc.message}"
        except jinja2.TemplateError as exc:
            return f"{path}: {exc}"
        except Exception as exc:  # the template's own code raised (1/0 ...)
            return f"{path}: {_raised(exc)}"
        return None
