"""The SDK's two clients offer the same calls."""

from __future__ import annotations


def test_client_and_async_client_are_twins() -> None:
    """The same public calls with the same parameters; only their awaiting differs."""
    import inspect

    from speakerlink import AsyncClient, Client

    def calls(cls: type) -> dict[str, list[inspect.Parameter]]:
        return {name: list(inspect.signature(f).parameters.values())
                for name, f in vars(cls).items() if callable(f) and not name.startswith("_")}

    assert calls(Client) == calls(AsyncClient)
