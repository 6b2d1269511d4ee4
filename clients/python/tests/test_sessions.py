import asyncio

import pytest

import codebeaker


def test_rest_sessions(client, tmp_path):
    s = client.create_session("python", idle_timeout_minutes=5)
    try:
        assert s.session_id and s.language == "python" and s.state == "Active"
        assert any(x.session_id == s.session_id for x in client.list_sessions())
        assert client.get_session(s.session_id).session_id == s.session_id

        w = client.write_file(s.session_id, "hello.py", "import sys\nprint(6 * 7, sys.argv[1])")
        assert w.success, w.error
        r = client.execute_shell(s.session_id, "python3", ["hello.py", "x"])
        assert r.success and r.stdout == "42 x\n" and r.exit_code == 0
        assert client.read_file(s.session_id, "hello.py").result["content"].startswith("import sys")

        failed = client.execute_shell(s.session_id, "python3", ["-c", "raise SystemExit(3)"])
        assert not failed.success and failed.exit_code == 3 and failed.error_kind == "exit_status"

        local = tmp_path / "blob.bin"
        local.write_bytes(bytes(range(256)) * 4)
        assert client.upload(s.session_id, local, "blob.bin").success
        back = tmp_path / "back.bin"
        assert client.download(s.session_id, "blob.bin", back) == local.read_bytes()
        assert back.read_bytes() == local.read_bytes()
        with pytest.raises(codebeaker.NotFound):
            client.download(s.session_id, "missing.bin")

        run = client.run_code(s.session_id, "result = open('hello.py').read()[:6]")
        assert run.success and run.result["output"] == "import"
    finally:
        assert client.close_session(s.session_id)
    with pytest.raises(codebeaker.NotFound) as e:
        client.get_session(s.session_id)
    assert e.value.kind == "session_not_found"


def test_the_session_context_manager_closes_it(client):
    with client.session("python") as s:
        assert client.execute_shell(s.session_id, "true").success
    with pytest.raises(codebeaker.NotFound):
        client.execute_shell(s.session_id, "true")


def test_websocket_sessions_stream_output(client):
    with client.connect() as rpc:
        s = rpc.create_session("python")
        seen = []
        r = rpc.execute_shell(s.session_id, "python3",
                              ["-u", "-c", "import sys\nprint('one')\nprint('two', file=sys.stderr)"],
                              on_output=seen.append)
        assert r.success and r.stdout == "one\n"
        # Chunks are as the pipes give them: join each stream's.
        assert "".join(o.data for o in seen if o.stream == "stdout") == "one\n"
        assert "".join(o.data for o in seen if o.stream == "stderr") == "two\n"
        assert all(o.session_id == s.session_id for o in seen)

        stream = rpc.stream_shell(s.session_id, "python3",
                                  ["-u", "-c", "import time\nfor i in range(3):\n print(i)\n time.sleep(0.05)"])
        chunks = [o.data for o in stream]
        assert "".join(chunks) == "0\n1\n2\n" and stream.result.success

        assert rpc.execute(s.session_id, {"type": "write_file", "path": "a.txt", "content": "A"}).success
        # The same session over REST: one workspace.
        assert client.read_file(s.session_id, "a.txt").result["content"] == "A"
        assert any(x.session_id == s.session_id for x in rpc.list_sessions())
        assert rpc.run("python", "result = 5").output == 5
        assert rpc.close_session(s.session_id)
        with pytest.raises(codebeaker.NotFound):
            rpc.execute(s.session_id, {"type": "read_file", "path": "a.txt"})


def test_async_websocket_and_rest_sessions(url):
    async def main():
        async with codebeaker.AsyncClient(url=url) as c:
            async with c.session("python") as s:
                assert (await c.write_file(s.session_id, "b.bin", b"\x01\x02")).success
                assert await c.download(s.session_id, "b.bin") == b"\x01\x02"
            async with await c.connect() as rpc:
                s = await rpc.create_session("python")
                got = []

                async def on_output(o):
                    got.append(o.data)
                r = await rpc.execute_shell(s.session_id, "echo", ["hi"], on_output=on_output)
                assert r.success and "".join(got) == "hi\n"
                stream = rpc.stream_shell(s.session_id, "echo", ["there"])
                assert "".join([o.data async for o in stream]) == "there\n" and stream.result.success
                assert await rpc.close_session(s.session_id)
    asyncio.run(main())


def test_a_refused_websocket_upgrade_raises_the_class_of_its_kind(url):
    with pytest.raises(codebeaker.Unauthenticated) as e:
        codebeaker.Client("cb_000000000000_wrong", url).connect()
    assert e.value.status == 401

    async def main():
        with pytest.raises(codebeaker.Unauthenticated):
            await codebeaker.AsyncClient("cb_000000000000_wrong", url).connect()
        with pytest.raises(codebeaker.TransportError):
            await codebeaker.AsyncClient("k", "http://127.0.0.1:9").connect(open_timeout=2)
    asyncio.run(main())
