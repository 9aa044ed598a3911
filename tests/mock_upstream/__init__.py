"""Mock upstream for the end-to-end tests (stands in for OpenAI, Anthropic and
Gemini). Run ``python -m tests.mock_upstream --host 127.0.0.1 --port N`` from
the repo root, or in-process::

    from tests.mock_upstream import MockUpstreamServer, start_in_thread
    port = start_in_thread()                 # daemon thread, port 0 -> ephemeral
    with MockUpstreamServer() as srv: ...    # srv.port, srv.base_url, srv.requests(), srv.reset(), srv.release()

Control endpoints (never recorded): ``GET /__mock/requests``, ``GET /__mock/last``,
``POST /__mock/reset``, ``POST /__mock/release``, ``GET /__mock/health``.
"""

from .server import MockUpstreamServer, classify, make_app, serve_forever, start_in_thread

__all__ = ["MockUpstreamServer", "classify", "make_app", "serve_forever", "start_in_thread"]
