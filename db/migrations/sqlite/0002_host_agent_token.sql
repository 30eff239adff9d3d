-- The secret token of a host served by an oxstack-agent (kvm clusters): the engine sends it with
-- every command and checks the agent's callbacks against it. NULL for simulator hosts. Never
-- returned by the API.
ALTER TABLE hosts ADD COLUMN agent_token TEXT;
