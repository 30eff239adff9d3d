-- How the engine checks the certificate of a host's agent served over https://: CA certificates
-- (PEM) its certificate must chain to, or the SHA-256 of the agent's own certificate (64
-- lower-case hex digits: pinned). At most one of them; both NULL: the system's roots (or an
-- http:// agent). Not secret (a certificate is public), but not returned by the API either.
ALTER TABLE hosts ADD COLUMN agent_ca_pem TEXT;
ALTER TABLE hosts ADD COLUMN agent_cert_sha256 TEXT;
