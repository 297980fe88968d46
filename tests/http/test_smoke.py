import httpx

from tests.helpers import RawH2, running_server, url


async def test_hello_over_http1_and_h2_with_httpx() -> None:
    async with running_server() as server:
        async with httpx.AsyncClient() as client:
            resp = await client.get(url(server))
            assert resp.http_version == "HTTP/1.1"
            assert resp.status_code == 200
            assert resp.json() == {"message": "hello, world"}
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            resp = await client.get(url(server))
            assert resp.http_version == "HTTP/2"
            assert resp.json() == {"message": "hello, world"}


async def test_hello_over_h2_with_raw_client() -> None:
    async with running_server() as server, RawH2.connect(server) as client:
        status, body = await client.get("/hello")
        assert status == 200
        assert body == b'{"message":"hello, world"}'
