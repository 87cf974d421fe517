-- Every key leads with tenant_id, so the schema can be distributed by tenant on a
-- PostgreSQL-compatible distributed database (docs/scaling.md): the provisioning jobs' key was
-- the job id alone. tests/api/isolation.rs checks the catalogue for it.
ALTER TABLE provisioning_jobs DROP CONSTRAINT provisioning_jobs_pkey;
ALTER TABLE provisioning_jobs ADD PRIMARY KEY (tenant_id, id);
