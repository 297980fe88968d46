"""docs/rest-client.md keeps its runnable examples (tests/test_docs.py runs them)."""

from tests.test_docs import examples


def test_the_rest_client_page_has_runnable_examples() -> None:
    names = [name for name, _ in examples() if name.startswith("rest-client.md")]
    assert len(names) >= 3
