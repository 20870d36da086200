"""The conversation's rules live in the application layer (the Chat view only renders them)."""

from __future__ import annotations

from localopen.app.context import AppContext
from localopen.app.conversation import chat
from localopen.core.chat import conversations as convs


def test_the_first_message_names_the_chat_and_an_edit_drops_what_followed() -> None:
    ctx = AppContext()
    c = convs.create(ctx.db, chat.NEW_CHAT_TITLE, None, {})
    chat.add_user_turn(ctx, c, "How do tides work? " * 5)
    assert c.title == "How do tides work? How do tides work? How do…"  # cut at a word, within TITLE_LENGTH
    assert convs.get(ctx.db, c.id).title == c.title
    convs.add_message(ctx.db, c.id, "assistant", "The moon.")
    chat.add_user_turn(ctx, c, "And the sun?")
    assert [m.content for m in convs.messages(ctx.db, c.id)] == [
        ("How do tides work? " * 5),
        "The moon.",
        "And the sun?",
    ]
    # Editing the first message: everything from it on is replaced, the title stays.
    chat.add_user_turn(ctx, c, "Why is the sky blue?", edit_from=convs.messages(ctx.db, c.id)[0].position)
    assert [m.content for m in convs.messages(ctx.db, c.id)] == ["Why is the sky blue?"]
    assert convs.get(ctx.db, c.id).title.startswith("How do tides work?")


def test_a_regeneration_drops_the_last_answer_only() -> None:
    ctx = AppContext()
    c = convs.create(ctx.db, "Named", None, {})
    assert not chat.drop_last_answer(ctx, c.id)  # nothing to answer
    chat.add_user_turn(ctx, c, "Hi")
    assert c.title == "Named"  # a chat named by the user keeps its name
    convs.add_message(ctx.db, c.id, "assistant", "Hello!", reasoning="greet")
    assert chat.drop_last_answer(ctx, c.id)
    assert chat.conversation_messages(ctx, c.id, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
