"""The SDK's two clients offer the same calls."""

from __future__ import annotations


def test_client_and_async_client_are_twins() -> None:
    """The same public calls with the same parameters; only their awaiting differs (and the
    async client's live() also takes async iterables of frames)."""
    import inspect

    from speakerlink import AsyncClient, Client

    def calls(cls: type) -> dict[str, list[inspect.Parameter]]:
        def same(p: inspect.Parameter) -> inspect.Parameter:
            return p.replace(annotation=str(p.annotation).replace(" | AsyncIterable[bytes]", ""))

        return {name: [same(p) for p in inspect.signature(f).parameters.values()]
                for name, f in vars(cls).items() if callable(f) and not name.startswith("_")}

    assert calls(Client) == calls(AsyncClient)
