"""HTTP/1.1 on httptools: the connection protocol, request rules, bodies, response framing."""
