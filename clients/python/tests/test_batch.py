import asyncio

import codebeaker


def test_batch_returns_every_result_in_order(client):
    b = client.batch("python", "result = input_data['v'] * 2", [{"v": i} for i in range(5)],
                     max_concurrency=2, timeout_ms=5000)
    assert b.summary.total_items == 5 and b.summary.success_count == 5
    assert [r.output for r in b.results] == [0, 2, 4, 6, 8]
    assert [r.id for r in b.results] == ["0", "1", "2", "3", "4"]


def test_batch_items_carry_ids_and_their_own_stdin(client):
    b = client.batch("python", "import sys\nresult = sys.stdin.read()", items=[
        {"id": "a", "stdin": "one"}, {"id": "b", "stdin": "two"}])
    assert {r.id: r.output for r in b.results} == {"a": "one", "b": "two"}


def test_a_failing_item_does_not_fail_the_batch(client):
    b = client.batch("python", "result = 1 / input_data", [1, 0])
    assert b.summary.failure_count == 1
    assert b.results[1].error.kind == "runtime_error" and not b.results[1].success


def test_batch_stream_iterates_ndjson_items(client):
    stream = client.batch_stream("python", "result = input_data + 1", list(range(6)))
    items = list(stream)
    assert sorted(i.index for i in items) == list(range(6))
    assert all(i.output == i.index + 1 for i in items)
    assert stream.summary is not None and stream.summary.success_count == 6


def test_batch_stream_raises_refusals():
    c = codebeaker.Client()
    try:
        list(c.batch_stream("cobol", "x", [1]))
    except codebeaker.UnsupportedLanguage as e:
        assert e.status == 400
    else:
        raise AssertionError("a refused batch stream must raise")


def test_async_batch_and_stream(url):
    async def main():
        async with codebeaker.AsyncClient(url=url) as c:
            b = await c.batch("python", "result = input_data", ["x", "y"])
            assert [r.output for r in b.results] == ["x", "y"]
            stream = c.batch_stream("python", "result = input_data", [1, 2, 3])
            seen = [i.output async for i in stream]
            assert sorted(seen) == [1, 2, 3] and stream.summary.total_items == 3
    asyncio.run(main())
