import asyncio

import pytest

import codebeaker
from codebeaker import File


def test_execute_runs_the_edge_contract(client):
    r = client.execute("python", "result = {'sum': sum(input_data['xs'])}", {"xs": [1, 2, 3]})
    assert r.success and r.output == {"sum": 6} and r.exit_code == 0
    assert r.execution_id and r.language == "python" and r.error is None


def test_stdin_args_and_files_reach_the_program(client):
    code = ("import sys\n"
            "result = {'argv': sys.argv[1:], 'stdin': sys.stdin.read(),\n"
            "          'text': open('lib/data.txt').read(), 'bin': list(open('raw.bin', 'rb').read())}")
    r = client.execute("python", code, stdin="from stdin", args=["a", "b c"],
                       files=[File("lib/data.txt", "hello"), File("raw.bin", b"\x00\xff")])
    assert r.success, r
    assert r.output == {"argv": ["a", "b c"], "stdin": "from stdin", "text": "hello", "bin": [0, 255]}


def test_plain_mode_answers_stdout(client):
    r = client.execute("python", "print('hi')", mode="plain", timeout_ms=5000, memory_limit_mb=256)
    assert r.success and r.stdout == "hi\n" and r.output is None


def test_a_failing_program_is_a_result_not_an_exception(client):
    r = client.execute("python", "raise ValueError('boom')")
    assert not r.success and r.error.kind == "runtime_error" and "boom" in r.stderr + r.error.message


def test_refusals_raise_the_class_of_their_kind(client, url):
    with pytest.raises(codebeaker.UnsupportedLanguage) as e:
        client.execute("cobol", "x")
    assert e.value.kind == "unsupported_language" and e.value.status == 400
    assert isinstance(e.value, codebeaker.InvalidRequest)

    with pytest.raises(codebeaker.Unauthenticated) as e:
        codebeaker.Client("cb_000000000000_wrong", url).execute("python", "result = 1")
    assert e.value.status == 401 and e.value.message

    with pytest.raises(codebeaker.InvalidRequest) as e:
        client.execute("python", "result = 1", files=[File("../escape.txt", "x")])
    assert e.value.kind == "invalid_request" and e.value.status == 422

    with pytest.raises(codebeaker.PayloadTooLarge) as e:
        client.execute("python", "result = 1", stdin="x" * (2 * 1024 * 1024))
    assert e.value.status == 413

    with pytest.raises(codebeaker.LimitExceeded) as e:
        client.execute("python", "result = 1", timeout_ms=10_000_000)
    assert e.value.kind == "limit_exceeded" and isinstance(e.value, codebeaker.Forbidden)

    with pytest.raises(codebeaker.UnknownPackages):
        client.execute("python", "result = 1", packages=["no-such-package-xyz"])

    with pytest.raises(codebeaker.NotFound) as e:
        client.get_execution("00000000-0000-0000-0000-000000000000")
    assert e.value.status == 404


def test_an_unreachable_gateway_is_a_transport_error():
    with pytest.raises(codebeaker.TransportError) as e:
        codebeaker.Client("k", "http://127.0.0.1:9", timeout=2).languages()
    assert e.value.kind == "unreachable"


def test_the_async_client_executes(url):
    async def main():
        async with codebeaker.AsyncClient(url=url) as c:
            results = await asyncio.gather(*(c.execute("python", "result = input_data * 2", i)
                                             for i in range(3)))
            assert [r.output for r in results] == [0, 2, 4]
            with pytest.raises(codebeaker.UnsupportedLanguage):
                await c.execute("cobol", "x")
    asyncio.run(main())


def test_languages(client):
    langs = client.languages()
    python = next(l for l in langs if l.name == "python")
    assert python.available and "py" in python.aliases and python.file == "program.py"
