"""A conversation with a model: the chat session and its turns, pictures, tools (the loop, MCP
servers, the agent check), what a model can do and what drafts for it."""
