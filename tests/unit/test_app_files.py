"""The one rule for deletions: only what the app created, inside its data folder."""

from __future__ import annotations

import pytest

from core.app_files import AppFiles, write_atomically
from core.conversations import Conversations
from core.errors import NotAppCreated


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def user(tmp_path):
    """A folder of the user's own, outside the data folder."""
    folder = tmp_path / "my-notes"
    folder.mkdir()
    (folder / "note.md").write_text("mine\n")
    return folder


def test_a_claimed_folder_and_the_files_in_it_can_be_deleted(data):
    files = AppFiles(data)
    clone = files.make_dir(data / "sources" / "abc")
    (clone / "docs").mkdir()
    (clone / "docs" / "a.md").write_text("a")
    assert files.remove(clone / "docs" / "a.md") and not (clone / "docs" / "a.md").exists()
    assert files.remove(clone) and not clone.exists()
    assert files.claimed() == []  # the claim goes with the folder
    assert files.remove(clone) is False  # deleting what is gone is not an error


def test_claims_survive_a_restart(data):
    AppFiles(data).make_dir(data / "models" / "m")
    again = AppFiles(data)
    assert not again.new and again.is_owned(data / "models" / "m")


@pytest.mark.parametrize("where", ["outside", "the data folder", "its parent", "inside, unclaimed"])
def test_anything_not_claimed_is_refused_and_kept(data, user, where):
    files = AppFiles(data)
    target = {
        "outside": user,
        "the data folder": data,
        "its parent": data.parent,
        "inside, unclaimed": data / "my-notes",
    }[where]
    target.mkdir(exist_ok=True)
    (target / "keep.md").write_text("keep")
    with pytest.raises(NotAppCreated) as refused:
        files.remove(target)
    assert "delete it yourself" in str(refused.value) and "自行删除" in refused.value.message("zh")
    assert (target / "keep.md").read_text() == "keep"


def test_folders_outside_the_data_folder_cannot_even_be_claimed(data, user):
    files = AppFiles(data)
    for outside in (user, data, data.parent, data / ".." / "my-notes"):
        with pytest.raises(NotAppCreated):
            files.claim(outside)
    assert files.claimed() == []


def test_a_link_is_never_followed(data, user):
    files = AppFiles(data)
    link = data / "sources" / "abc"
    link.parent.mkdir()
    link.symlink_to(user, target_is_directory=True)
    with pytest.raises(NotAppCreated, match="symbolic link"):
        files.remove(link)
    # A claim made through the link is judged by where the link leads: outside.
    with pytest.raises(NotAppCreated):
        files.claim(link)
    with pytest.raises(NotAppCreated):
        files.remove(link / "note.md")
    assert (user / "note.md").read_text() == "mine\n"


def test_a_link_to_a_claimed_folder_is_not_a_way_to_delete_it(data):
    files = AppFiles(data)
    real = files.make_dir(data / "sources" / "real")
    (data / "alias").symlink_to(real, target_is_directory=True)
    with pytest.raises(NotAppCreated):
        files.remove(data / "alias")
    assert real.is_dir()


def test_a_folder_swapped_for_a_link_after_its_claim_is_refused(data, user):
    files = AppFiles(data)
    clone = files.make_dir(data / "sources" / "abc")
    clone.rmdir()
    clone.symlink_to(user, target_is_directory=True)
    with pytest.raises(NotAppCreated):
        files.remove(clone)
    assert (user / "note.md").read_text() == "mine\n"


def test_links_inside_a_deleted_folder_are_removed_not_followed(data, user):
    files = AppFiles(data)
    clone = files.make_dir(data / "sources" / "abc")
    (clone / "home").symlink_to(user, target_is_directory=True)
    (clone / "note-link.md").symlink_to(user / "note.md")
    files.remove(clone)
    assert not clone.exists()
    assert (user / "note.md").read_text() == "mine\n"


def test_a_user_folder_inside_a_claimed_folder_is_still_not_deleted(data):
    files = AppFiles(data)
    clone = files.make_dir(data / "sources" / "abc")
    inner = clone / "docs"
    inner.mkdir()
    with pytest.raises(NotAppCreated):
        files.remove(inner)  # only claimed folders themselves, never a folder someone points at inside one
    assert inner.is_dir()


def test_a_file_outside_any_claimed_folder_is_refused(data):
    files = AppFiles(data)
    loose = data / "settings.json"
    loose.write_text("{}")
    with pytest.raises(NotAppCreated):
        files.remove(loose)
    assert loose.exists()


def test_saving_never_writes_through_a_planted_link(data, user):
    store = Conversations(data / "conversations", AppFiles(data))
    chat = store.create("first")
    # Where the old code wrote its temporary file, and the file itself: both links to the user's note.
    (data / "conversations" / f"{chat.id}.tmp").symlink_to(user / "note.md")
    store.rename(chat.id, "second")
    assert store.get(chat.id).title == "second"
    target = data / "conversations" / "linked.json"
    target.symlink_to(user / "note.md")
    write_atomically(target, "{}")
    assert not target.is_symlink() and target.read_text() == "{}"
    assert (user / "note.md").read_text() == "mine\n"
