-- A TOTP code is good for its 30-second step (and one step of drift either
-- way); without a record of the last step accepted, the same code signs in
-- twice (RFC 6238, section 5.2). Each accepted code moves this forward, and
-- a code for this step or an earlier one is refused.
ALTER TABLE operators ADD COLUMN totp_last_step bigint;
