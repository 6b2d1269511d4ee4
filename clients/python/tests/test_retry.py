"""A key with a rate of 1/s and a burst of 1: the second call in a row is refused with 429
and `Retry-After`, which the client honours."""

import asyncio
import time

import pytest

import codebeaker


def _drain(c):
    # Take the key's one token, then make sure the next call is over the rate.
    try:
        c.languages()
    except codebeaker.RateLimited:
        pass


def test_a_429_is_retried_after_retry_after(url, slow_key):
    with codebeaker.Client(slow_key, url, max_retries=0) as c:
        _drain(c)
        with pytest.raises(codebeaker.RateLimited) as e:
            c.languages()
        assert e.value.kind == "rate_limited" and e.value.status == 429
        assert e.value.retry_after is not None and e.value.retry_after >= 0
    with codebeaker.Client(slow_key, url, max_retries=5, max_retry_wait=5) as c:
        _drain(c)
        started = time.monotonic()
        r = c.execute("python", "result = 'after retry'")
        assert r.output == "after retry"
        assert time.monotonic() - started >= 0.2, "the call was not held back by Retry-After"


def test_the_async_client_retries_too(url, slow_key):
    async def main():
        async with codebeaker.AsyncClient(slow_key, url, max_retries=5, max_retry_wait=5) as c:
            a, b = await asyncio.gather(c.languages(), c.languages())
            assert a and b
    asyncio.run(main())
