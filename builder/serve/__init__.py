"""mpforge serve: the back end of generated mini-programs, speaking Alipay's OpenAPI.

One ASGI process serves many mini-programs, each read from its spec:

* `server.run_serve`: what `mpforge serve` runs (specs -> app -> uvicorn).
* `app.create_app`: the routes under /api/v1/{appid}/, the core's (session, content and
  its versions) and the plugins' (`mpforge_serve_routes`: the coupon plugin's claims,
  the promotion plugin's events), and their OpenAPI document (`openapi`, from the
  models in `api_models`). `plugin_api` is what a plugin's `serve.py` imports.
* `claims`: how a claim reserves stock and has Alipay issue exactly one voucher.
* `storage`: the database (SQLite or PostgreSQL) and its migrations (`migrations/`, and
  the plugins' own branches from `mpforge_serve_migrations`).
* `merchant`: a spec's app id and coupons; `AlipayConfig`, each app's keys and the gateway.
* `session_tokens`, `rate_limit`: who a request is from; how often it may come.
* `alipay_client.AlipayClient`: the one way out to Alipay (Alipay's official SDK).
* `sandbox` (with `sandbox_methods`, `sandbox_state`, `sandbox_server`, `sandbox_keys`):
  the gateway the tests talk to instead, which checks and answers as Alipay does (the
  plugins' methods from `mpforge_sandbox_methods`); `local_sandbox` stands
  it in for a set of merchants (`mpforge serve --sandbox`, tests, bench).
"""
