"""Chat: templates rendered as transformers does, the token stream split into answer and reasoning, conversations."""
