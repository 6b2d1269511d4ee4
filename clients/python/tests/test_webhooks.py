"""Unit-level: the signature scheme of src/webhooks.rs `sign`, on its own fixed vector."""

from codebeaker import sign_webhook, verify_webhook

# src/webhooks.rs: sign("secret", 1_700_000_000, "{}")
VECTOR = "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"


def test_sign_matches_the_gateway():
    assert sign_webhook("secret", 1_700_000_000, "{}") == VECTOR
    assert sign_webhook("secret", "1700000000", b"{}") == VECTOR


def test_verify_accepts_the_vector_and_refuses_changes():
    assert verify_webhook("secret", "1700000000", VECTOR, b"{}", now=1_700_000_010)
    assert verify_webhook("secret", 1_700_000_000, VECTOR, "{}", tolerance=None)
    assert not verify_webhook("secret", "1700000000", VECTOR, b"{ }", tolerance=None)
    assert not verify_webhook("other", "1700000000", VECTOR, b"{}", tolerance=None)
    assert not verify_webhook("secret", "1700000001", VECTOR, b"{}", tolerance=None)
    assert not verify_webhook("secret", "not-a-number", VECTOR, b"{}")
    assert not verify_webhook("secret", "1700000000", "", b"{}", tolerance=None)


def test_old_timestamps_are_refused():
    assert not verify_webhook("secret", "1700000000", VECTOR, b"{}", now=1_700_000_000 + 301)
    assert not verify_webhook("secret", "1700000000", VECTOR, b"{}", now=1_700_000_000 - 301)
