-- A tenant's queued operations in the order they run. The claim ("no older
-- queued operation of the tenant") and the lookup of a tenant's next
-- operation after an outcome both ask exactly this; without it the planner,
-- on statistics taken while the table was small, walked every queued
-- operation through operations_state_created_idx and filtered by tenant
-- (thousands of index entries per claim under a backlog).
CREATE INDEX operations_queued_by_tenant ON operations (tenant_id, created_at, id) WHERE state = 'queued';

