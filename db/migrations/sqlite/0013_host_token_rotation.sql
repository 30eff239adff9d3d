-- A host's agent token while it is rotated (`POST /v1/hosts/{uuid}/rotate-token`): the new
-- token, stored as `agent_token` is (sealed with the node's secret key when it has one), written
-- before the agent is sent it, and when (Unix milliseconds). When the agent has taken it, one
-- write makes it `agent_token` and clears both. A row that keeps one after its rotation ended
-- (the node stopped, or the agent's answer was lost) is settled by the next node that finds
-- the agent refusing `agent_token`, or by the next rotation: it tries the pending token and
-- adopts it when the agent takes it. NULL when no rotation is under way or left. Never
-- returned by the API.
ALTER TABLE hosts ADD COLUMN agent_token_pending TEXT;
ALTER TABLE hosts ADD COLUMN agent_token_pending_at INTEGER;
