"""mpforge serve: the back end of a generated mini-program, speaking Alipay's OpenAPI.

`alipay_client.AlipayClient` is the one way out to Alipay (through Alipay's official SDK);
`sandbox` is the gateway the tests talk to instead, which checks and answers as Alipay does.
"""
