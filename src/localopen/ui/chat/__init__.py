"""The Chat view, in parts: the conversation list, the model bar, the transcript, the composer and
the side panel of settings, put together by view.py (ChatView)."""
