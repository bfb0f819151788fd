-- The audit log is read by person and action (a list read is recorded once per person and list
-- every 10 minutes: platform/audit.rs) and by object (the admin page's «Журнал» of one
-- consultation, recording or request).
CREATE INDEX audit_log_actor ON audit_log (actor_id, action, at);
CREATE INDEX audit_log_object ON audit_log (object_id, at);
