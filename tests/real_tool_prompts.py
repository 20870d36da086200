"""Tool prompts for real tool-trained models: requests that need a tool (with the tool and the
arguments a right call has) and requests that need none. Shared by the tests and
benchmarks/real_tools.py."""

from __future__ import annotations

from typing import Any

from localopen.app.conversation.agent_check import function_tool

TOOLS = [
    function_tool("get_weather", "The current weather in a city.", {"city": {"type": "string"}}, ["city"]),
    function_tool(
        "get_time",
        "The current time in an IANA time zone, such as Europe/Paris.",
        {"timezone": {"type": "string"}},
        ["timezone"],
    ),
    function_tool(
        "convert_currency",
        "Convert an amount of money from one currency to another (ISO codes such as USD, EUR).",
        {"amount": {"type": "number"}, "from_currency": {"type": "string"}, "to_currency": {"type": "string"}},
        ["amount", "from_currency", "to_currency"],
    ),
    function_tool(
        "search_files",
        "Search the user's files for a text and list the files that contain it.",
        {"text": {"type": "string"}},
        ["text"],
    ),
]
# (request, the tool a right call names, what its arguments must hold: key -> a lower-case fragment)
NEEDS_TOOL: list[tuple[str, str, dict[str, str]]] = [
    ("What is the weather in Paris right now?", "get_weather", {"city": "paris"}),
    ("Is it raining in Tokyo at the moment?", "get_weather", {"city": "tokyo"}),
    ("How warm is it in Berlin today?", "get_weather", {"city": "berlin"}),
    ("What time is it in New York (America/New_York)?", "get_time", {"timezone": "new_york"}),
    ("Tell me the current time in Europe/London.", "get_time", {"timezone": "london"}),
    ("Convert 100 US dollars to euros.", "convert_currency", {"from_currency": "usd", "to_currency": "eur"}),
    ("How many Japanese yen is 50 EUR?", "convert_currency", {"from_currency": "eur", "to_currency": "jpy"}),
    ("Find my files that mention 'quarterly report'.", "search_files", {"text": "quarterly"}),
    ("Which of my files contain the word invoice?", "search_files", {"text": "invoice"}),
    ("What's the weather like in Madrid?", "get_weather", {"city": "madrid"}),
]
NEEDS_NO_TOOL = [
    "Write a haiku about the sea.",
    "What is the capital of Italy? Answer in one word.",
    "Explain in one sentence what a Python list is.",
]


def right_call(name: str, arguments: dict[str, Any], tool: str, expect: dict[str, str]) -> bool:
    return name == tool and all(fragment in str(arguments.get(key, "")).lower() for key, fragment in expect.items())
