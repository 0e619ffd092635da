"""HTTP/2 (issue #20): the connection protocol, its engines and the negotiation."""
