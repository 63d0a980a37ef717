-- What a customer may read about a failed attempt. `last_error` keeps the
-- full reason for operators (admin, worker log); the portal shows only this
-- short text, which the worker builds from its own words and never from what
-- a tool printed or a customer's data contained.
ALTER TABLE operations ADD COLUMN customer_error text;

-- When the worker last removed what a failed provision left (its database,
-- clones, filestore copy): a failed tenant is cleaned once per failure.
ALTER TABLE tenants ADD COLUMN provision_cleaned_at timestamptz;
