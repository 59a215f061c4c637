"""Who may do what: the one place permissions are decided.

Roles: an administrator may do everything; a user may use the models an administrator
loaded and the knowledge bases they own or that are shared with them.

A knowledge base has an owner (``None``: nobody, for bases made with logins off) and a
sharing: ``private`` (owner and administrators only), ``read`` (shared read-only: others may
search, chat with and look at it) or ``edit`` (shared editable: others may also add and
remove sources, refresh, repair and evaluate it). Renaming, deleting and changing the sharing
("manage") are for the owner and administrators only.

The pages never decide this themselves: they work through :func:`scoped`, whose knowledge
bases, conversations and evaluation runs check the acting user on every call, so a knowledge
base name or conversation id put into a deep link or the session state gets no further than
the user's own rights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from core.errors import AdminOnly, KnowledgeBaseNotFound, NotPermitted
from core.knowledge.records import KnowledgeBase, Source
from core.users import LOCAL, User

if TYPE_CHECKING:
    from core.evaluation import EvalRun, EvaluationStore
    from core.knowledge.bases import KnowledgeBases

Action = Literal["read", "edit", "manage"]
READ: Action = "read"
EDIT: Action = "edit"
MANAGE: Action = "manage"
SHARINGS = ("private", "read", "edit")


def allowed(user: User, kb: KnowledgeBase, action: Action) -> bool:
    """Whether ``user`` may ``action`` ``kb``: the permission table, in one place."""
    if user.is_admin:
        return True
    if kb.owner is not None and kb.owner == user.name:
        return True
    if action == MANAGE:
        return False
    if kb.sharing == "edit":
        return True
    return kb.sharing == "read" and action == READ


def check(user: User, kb: KnowledgeBase, action: Action) -> None:
    """Raise :class:`NotPermitted` unless ``user`` may ``action`` ``kb``."""
    if not allowed(user, kb, action):
        raise NotPermitted(action=action, name=kb.name, owner=kb.owner or "nobody", sharing=kb.sharing)


def require_admin(user: User, what: str) -> None:
    """Raise :class:`AdminOnly` unless ``user`` is an administrator."""
    if not user.is_admin:
        raise AdminOnly(what=what)


def conversation_folder(user: User) -> str:
    """The folder (under the conversations folder) of ``user``'s conversations; "" for
    :data:`LOCAL`, whose conversations stay where they always were.
    """
    if user.is_local:
        return ""
    return "users/u-" + hashlib.sha256(user.name.encode("utf-8")).hexdigest()[:24]


class UserKnowledge:
    """:class:`~core.knowledge.bases.KnowledgeBases` as ``user`` may use them.

    Every method that names or takes a knowledge base checks the user's right on the
    knowledge base as recorded now (not as the caller's copy says); everything else is the
    underlying object's.
    """

    _READS = ("stats", "verify", "sources", "chunk_table", "is_empty", "splitter", "collection", "source_folder")
    _EDITS = ("repair", "remove_file", "remove_source", "writing")

    def __init__(self, inner: KnowledgeBases, user: User) -> None:
        self._inner = inner
        self.user = user

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in self._READS or name in self._EDITS:
            action = READ if name in self._READS else EDIT
            return self._guarded(value, action)
        return value

    def _guarded(self, method: Callable[..., Any], action: Action) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            # Every knowledge base and source among the arguments: a source of another
            # knowledge base passed along with one's own is checked as that other one.
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, KnowledgeBase):
                    self.fresh(arg, action)
                elif isinstance(arg, Source):
                    kb = self._inner.records.kb_by_id(arg.kb_id)
                    if kb is None:
                        raise KnowledgeBaseNotFound(name=arg.kb_id)
                    check(self.user, kb, action)
            return method(*args, **kwargs)

        return call

    def fresh(self, kb: KnowledgeBase, action: Action) -> KnowledgeBase:
        """``kb`` as recorded now, once ``user`` may ``action`` it."""
        current = self._inner.records.kb_by_id(kb.id)
        if current is None:
            raise KnowledgeBaseNotFound(name=kb.name)
        check(self.user, current, action)
        return current

    def all(self) -> list[KnowledgeBase]:
        """The knowledge bases the user may see, by name."""
        return [kb for kb in self._inner.all() if allowed(self.user, kb, READ)]

    def get(self, name: str) -> KnowledgeBase:
        """The knowledge base ``name``; raises :class:`NotPermitted` if the user may not see it."""
        kb = self._inner.get(name)
        check(self.user, kb, READ)
        return kb

    def can(self, kb: KnowledgeBase, action: Action) -> bool:
        """Whether the user may ``action`` ``kb`` (for pages that offer or hide a control)."""
        return allowed(self.user, kb, action)

    def create(self, name: str, embedding: str, splitter: Any) -> KnowledgeBase:
        """A new knowledge base owned by the user and private to them (with logins off: as before)."""
        if self.user.is_local:
            return self._inner.create(name, embedding, splitter)
        return self._inner.create(name, embedding, splitter, owner=self.user.name, sharing="private")

    def rename(self, kb: KnowledgeBase, new_name: str) -> KnowledgeBase:
        """Rename ``kb`` (owner or administrator)."""
        return self._inner.rename(self.fresh(kb, MANAGE), new_name)

    def delete(self, kb: KnowledgeBase) -> list:
        """Delete ``kb`` (owner or administrator)."""
        return self._inner.delete(self.fresh(kb, MANAGE))

    def discard_if_empty(self, kb: KnowledgeBase) -> bool:
        """Delete ``kb`` if it holds nothing (owner or administrator)."""
        return self._inner.discard_if_empty(self.fresh(kb, MANAGE))

    def set_access(self, kb: KnowledgeBase, owner: str | None, sharing: str) -> KnowledgeBase:
        """Change ``kb``'s sharing (owner or administrator); only an administrator gives it another owner."""
        current = self.fresh(kb, MANAGE)
        if owner != current.owner:
            require_admin(self.user, "change settings")
        return self._inner.set_access(current, owner, sharing)


class UserEvaluations:
    """Evaluation runs follow their knowledge base's permissions: the user sees the runs of
    knowledge bases they may read and deletes those of bases they may edit. Runs of deleted
    knowledge bases are administrators' only. Question sets are shared.
    """

    def __init__(self, inner: EvaluationStore, knowledge: KnowledgeBases, user: User) -> None:
        self._inner = inner
        self._knowledge = knowledge
        self.user = user

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _may(self, run: EvalRun, action: Action) -> bool:
        kb = self._knowledge.records.kb_by_name(run.kb)
        return self.user.is_admin if kb is None else allowed(self.user, kb, action)

    def runs(self) -> list[EvalRun]:
        """The runs of knowledge bases the user may read, newest first."""
        return [run for run in self._inner.runs() if self._may(run, READ)]

    def delete_run(self, run_id: str) -> None:
        """Forget a run of a knowledge base the user may edit."""
        run = next((r for r in self._inner.runs() if r.id == run_id), None)
        if run is None:
            return
        kb = self._knowledge.records.kb_by_name(run.kb)
        if kb is None:
            require_admin(self.user, "change settings")
        else:
            check(self.user, kb, EDIT)
        self._inner.delete_run(run_id)


class AdminOnlyCalls:
    """An object whose named methods only administrators may call; the rest pass through."""

    def __init__(self, inner: Any, user: User, guarded: dict[str, str]) -> None:
        self._inner = inner
        self._user = user
        self._guarded_calls = guarded

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in self._guarded_calls:
            require_admin(self._user, self._guarded_calls[name])
        return value


__all__ = [
    "EDIT",
    "LOCAL",
    "MANAGE",
    "READ",
    "SHARINGS",
    "AdminOnlyCalls",
    "UserEvaluations",
    "UserKnowledge",
    "allowed",
    "check",
    "conversation_folder",
    "require_admin",
]
