-- Issue 15: where each backup exists. Every backup is written to the primary
-- store (BACKUP_STORE_URL); the worker copies it to the replica
-- (BACKUP_REPLICA_URL) when one is configured and records when it did.
-- A restore or download that found the primary copy missing or corrupt
-- records that too, so operators see which copies are good.
ALTER TABLE backups
    ADD COLUMN replica_at timestamptz,
    ADD COLUMN primary_lost_at timestamptz;
CREATE INDEX backups_unreplicated_idx ON backups (created_at) WHERE replica_at IS NULL;
